"""A step that refreshes its dynamic card and then fails: the card stays as last refreshed."""

from aflow import FlowSpec, card, current, step
from aflow.cards import Markdown


class CardsFailingFlow(FlowSpec):
    @card(type="blank", refresh_interval=0)
    @step
    def start(self):
        current.card.append(Markdown("got this far"))
        current.card.refresh()
        if current.card:
            raise RuntimeError("the step fails after its card refreshed")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardsFailingFlow()
