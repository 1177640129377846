from base_steps import BaseSteps

from aflow import step


class Middle(BaseSteps):
    @step
    def middle(self):
        self.y = self.x + 1
        self.next(self.end)


class ChildFlow(Middle):
    """Every step comes from base classes, one of them in another module."""


if __name__ == "__main__":
    ChildFlow()
