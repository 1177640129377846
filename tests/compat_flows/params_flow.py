"""Parameters as Metaflow deployments set them, and an IncludeFile whose default file the flow's
module writes when imported (test_compat.py)."""

import os
import sys
import time

from aflow import FlowSpec, IncludeFile, Parameter, step

TABLE = os.environ.get("AFLOW_TEST_TABLE", "table.csv")

LAUNCHER = "warm_parent" in " ".join(sys.argv)  # the task launcher, importing this file too

with open(TABLE, "w") as f:
    if LAUNCHER:
        time.sleep(1.5)  # mid-write, for long enough to be seen
    f.write("a,b\n1,2\n")
if not LAUNCHER:
    time.sleep(1)  # slow to import on the command line: by now the launcher is mid-write


class ParamsCompatFlow(FlowSpec):
    table = IncludeFile("table", default=TABLE)
    alpha = Parameter("alpha", default=1)
    words = Parameter("words", default="a,b", separator=",")
    region = Parameter("region-name", default="eu")

    @step
    def start(self):
        self.got = {"table": self.table, "alpha": self.alpha, "words": self.words,
                    "region": self.region}  # fmt: skip
        self.next(self.end)

    @step
    def end(self):
        pass
