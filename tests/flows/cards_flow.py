"""A flow with the card features a migrating Metaflow user writes: a default card with appended
components, a blank card with an id, tables from lists and DataFrames, an image, a Vega-Lite chart,
an artifact, markup that must be escaped, a component that fails to render, and a dynamic card."""

import os
import time

from aflow import FlowSpec, Parameter, card, current, step
from aflow.cards import (
    Artifact,
    Component,
    Html,
    Image,
    Markdown,
    ProgressBar,
    PythonCode,
    Table,
    ValueBox,
    VegaChart,
)

# A 1x1 red PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cf"
    "c000000301010018dd8db00000000049454e44ae426082"
)


class Broken(Component):
    def data(self):
        raise RuntimeError("this component always fails")


class Slow(Component):
    kind = "markdown"

    def data(self):
        time.sleep(3)  # longer than its card's timeout
        return {"html": "too late"}


class CardsFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5, help="a parameter the default card lists")
    steps = Parameter("steps", default=3, help="how many progress updates the dynamic card shows")

    @card
    @step
    def start(self):
        self.scores = {"a": 1, "b": 2}
        current.card.append(Markdown("# Hello from start\n\n<script>alert(1)</script> **bold**"))
        current.card.append(Table([["x", 1], ["<b>y</b>", 2]], headers=["name", "value"]))
        current.card.append(ValueBox(title="Score", value=42, theme="success", change_indicator="+3"))
        current.card.append(PythonCode(code_string="print('<hi>')"))
        current.card.append(
            Html(
                '<p id="orange" style="background: orange; padding: 8px">Orange</p>'
                "<style>#orange { color: rgb(0, 0, 255) }</style>"
                "<script>document.title = 'scripts ran'</script>"
            )
        )
        self.next(self.report)

    @card(type="blank", id="chart")
    @card(id="summary", customize=True)
    @card(type="blank", id="slow", timeout=1)
    @step
    def report(self):
        import pandas as pd

        frame = pd.DataFrame({"k": ["a", "b", "c"], "v": [3, 1, 2]})
        self.frame = frame
        current.card.append(Markdown("## Summary card"))
        current.card.append(Table.from_dataframe(frame))
        current.card.append(Artifact(self.scores, name="scores"))
        current.card.append(Image(PIXEL, label="a red pixel"))
        current.card["chart"].append(
            VegaChart(
                {
                    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                    "data": {"values": [{"k": "a", "v": 3}, {"k": "b", "v": 1}, {"k": "c", "v": 2}]},
                    "mark": "bar",
                    "encoding": {
                        "x": {"field": "k", "type": "nominal"},
                        "y": {"field": "v", "type": "quantitative"},
                    },
                }
            )
        )
        current.card["chart"].append(Broken())
        current.card["chart"].append(object())  # not a component at all
        current.card["slow"].append(Slow())
        self.next(self.live)

    @card(type="blank", refresh_interval=0.2)
    @step
    def live(self):
        bar = ProgressBar(max=self.steps, label="Training")
        current.card.append(bar)
        current.card.append(Markdown("step 0"), id="status")
        current.card.refresh()
        gate = os.environ.get("CARDS_GATE")
        for i in range(1, self.steps + 1):
            if gate:  # a test lets each update through when it has seen the previous one
                while not os.path.exists(f"{gate}.{i}"):
                    time.sleep(0.05)
            bar.update(i)
            current.card.components["status"].update(f"step {i}")
            time.sleep(0.25)
            current.card.refresh()
        self.next(self.end)

    @step
    def end(self):
        current.card.append(Markdown("nobody sees this: end has no @card"))


if __name__ == "__main__":
    CardsFlow()
