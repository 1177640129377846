"""Cards as Metaflow users write them: a default card with a table, a plot and a chart, and a
dynamic card that shows training progress while the task runs.

    aflow run examples/cards.py            # then: aflow card view examples/cards.py train
    aflow ui                               # the cards on each task's page

matplotlib and Altair are used when installed; without them the card says so and the run goes on.
"""

import time

from aflow import FlowSpec, Parameter, card, current, step
from aflow.cards import Image, Markdown, ProgressBar, Table, ValueBox, VegaChart


class CardsExample(FlowSpec):
    epochs = Parameter("epochs", default=20, help="training epochs to report")

    @card
    @step
    def start(self):
        self.losses = [round(2.0 / (1 + e), 4) for e in range(self.epochs)]
        rows = [[e, loss] for e, loss in enumerate(self.losses)]
        current.card.append(Markdown("# Training data\nLoss per epoch, **before** training."))
        current.card.append(Table(rows[:5], headers=["epoch", "loss"]))
        self.next(self.train)

    @card(type="blank", id="progress", refresh_interval=1)
    @card(id="results", customize=True)
    @step
    def train(self):
        bar = ProgressBar(max=self.epochs, label="Epochs")
        best = ValueBox(title="Best loss", value="-")
        current.card["progress"].append(bar)
        current.card["progress"].append(best)
        for epoch in range(1, self.epochs + 1):
            time.sleep(0.1)  # the work of one epoch
            bar.update(epoch)
            best.update(value=min(self.losses[:epoch]))
            current.card.refresh()

        points = [{"epoch": e, "loss": loss} for e, loss in enumerate(self.losses)]
        try:
            import pandas as pd

            current.card.append(Table.from_dataframe(pd.DataFrame(points)))
        except ImportError:
            current.card.append(Markdown("_pandas is not installed: no table_"))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3))
            ax.plot(self.losses)
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            current.card.append(Image.from_matplotlib(fig, label="loss"))
        except ImportError:
            current.card.append(Markdown("_matplotlib is not installed: no plot_"))
        try:
            import altair as alt

            chart = alt.Chart(alt.Data(values=points)).mark_line(point=True).encode(
                x="epoch:Q", y="loss:Q"
            )
            current.card.append(VegaChart.from_altair_chart(chart))
        except ImportError:
            current.card.append(
                VegaChart(
                    {
                        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                        "data": {"values": points},
                        "mark": {"type": "line", "point": True},
                        "encoding": {
                            "x": {"field": "epoch", "type": "quantitative"},
                            "y": {"field": "loss", "type": "quantitative"},
                        },
                    }
                )
            )
        self.final_loss = self.losses[-1]
        self.next(self.end)

    @step
    def end(self):
        print("final loss", self.final_loss)


if __name__ == "__main__":
    CardsExample()
