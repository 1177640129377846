import os
import subprocess
import sys

from aflow import FlowSpec, Parameter, step


class Loud(FlowSpec):
    lines = Parameter("lines", default=20000)
    fail = Parameter("fail", type=bool, default=False)

    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.shout, foreach="items")

    @step
    def shout(self):
        for i in range(self.lines):
            print(f"out {self.input} {i}")
            if i % 1000 == 0:
                print(f"err {self.input} {i}", file=sys.stderr)
        print("unicode: héllo ✓ 日本")
        print("a very long line " + "x" * 200000)
        os.system(f"echo from-shell-{self.input}")
        subprocess.run(["sh", "-c", f"echo sub-err-{self.input} 1>&2"])
        sys.stdout.write("no trailing newline")
        if self.fail and self.input == 1:
            print("about to fail")
            raise RuntimeError("loud failure")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        print("\r\nend\tdone\x00nul")


if __name__ == "__main__":
    Loud()
