import asyncio
import os
import time

from aflow import FlowSpec, Parameter, step


class Conc(FlowSpec):
    n = Parameter("n", default=8)
    secs = Parameter("secs", default=0.5)
    use_async = Parameter("use_async", type=bool, default=False)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    async def work(self):
        t0 = time.time()
        if self.use_async:
            await asyncio.sleep(self.secs)
        else:
            time.sleep(self.secs)
        self.span = (t0, time.time(), os.getpid())
        self.next(self.join)

    @step
    def join(self, inputs):
        spans = [i.span for i in inputs]
        events = sorted(
            [(s, 1) for s, e, p in spans] + [(e, -1) for s, e, p in spans], key=lambda x: (x[0], x[1])
        )
        cur = peak = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        self.peak = peak
        self.pids = len({p for s, e, p in spans})
        self.wall = max(e for s, e, p in spans) - min(s for s, e, p in spans)
        self.next(self.end)

    @step
    def end(self):
        print(f"PEAK {self.peak} PIDS {self.pids} WALL {self.wall:.2f}")


if __name__ == "__main__":
    Conc()
