import asyncio
import os
import sys

from aflow import FlowSpec, Parameter, current, step


class RuntimeNext(FlowSpec):
    mode = Parameter("mode", default="ok")

    @step
    def start(self):
        self.next(self.middle)

    @step
    async def middle(self):
        await asyncio.sleep(0.05)
        self.where = current.step_name
        m = self.mode
        if m == "twice":
            getattr(self, "next")(self.end)
        elif m == "none":
            self.next = lambda *a, **k: None
        elif m == "wrong":
            getattr(self, "next")(self.start)
        elif m == "foreach_dyn":
            self.items = [1, 2]
            getattr(self, "next")(self.end, foreach="items")
        elif m == "sysexit0":
            sys.exit(0)
        elif m == "sysexit3":
            sys.exit(3)
        elif m == "osexit":
            os._exit(0)
        elif m == "kbint":
            raise KeyboardInterrupt()
        elif m == "baseexc":
            raise BaseException("base")
        elif m == "raise_async":
            await asyncio.sleep(0)
            raise RuntimeError("async boom")
        elif m == "bad_artifact":
            self.lam = lambda x: x
        elif m == "string_next":
            getattr(self, "next")("end")
        elif m == "notastep":
            getattr(self, "next")(print)
        self.next(self.end)

    @step
    def end(self):
        print("END where", self.where)


if __name__ == "__main__":
    RuntimeNext()
