"""Metaflow's command-line habits (test_compat.py): the run id file exists before the first task."""

import os
from pathlib import Path

from aflow import FlowSpec, current, step


class CliCompatFlow(FlowSpec):
    @step
    def start(self):
        path = os.environ.get("AFLOW_TEST_RUN_ID_FILE")
        self.run_id_file_said = Path(path).read_text() if path and os.path.exists(path) else None
        self.own_run_id = current.run_id
        self.blob = b"x" * 5000
        self._hidden = 1
        self.next(self.end)

    @step
    def end(self):
        self.answer = 42


if __name__ == "__main__":
    CliCompatFlow()
