"""ML-tutorial-style flow: hyperparameter grid via nested foreach, branch inside foreach."""

import sys

import numpy as np

from aflow import FlowSpec, JSONType, Parameter, current, step


class ModelSpec:
    def __init__(self, lr, depth):
        self.lr = lr
        self.depth = depth

    def score(self, X, y):
        return float(np.mean((X @ np.ones(X.shape[1]) * self.lr - y) ** 2)) + self.depth

    def __eq__(self, other):
        return isinstance(other, ModelSpec) and (self.lr, self.depth) == (other.lr, other.depth)

    def __repr__(self):
        return f"ModelSpec({self.lr}, {self.depth})"


class TrainFlow(FlowSpec):
    """Train a grid of models."""

    seed = Parameter("seed", default=42, help="random seed")
    alpha = Parameter("alpha", default=0.5, type=float)
    name = Parameter("name", required=True, help="experiment name")
    grid = Parameter("grid", type=JSONType, default='{"lr": [0.1, 0.01], "depth": [1, 2, 3]}')
    normalize = Parameter("normalize", type=bool, default=True)

    @step
    def start(self):
        rng = np.random.default_rng(self.seed)
        self.X = rng.normal(size=(200, 5))
        self.y = rng.normal(size=200)
        self.lrs = self.grid["lr"]
        self.info = dict(
            flow=current.flow_name,
            run=current.run_id,
            step=current.step_name,
            task=current.task_id,
            pathspec=current.pathspec,
            retry=current.retry_count,
        )
        print(
            "training",
            self.name,
            "alpha",
            self.alpha,
            type(self.alpha).__name__,
            "seed",
            self.seed,
            type(self.seed).__name__,
            "normalize",
            self.normalize,
        )
        print("this goes to stderr", file=sys.stderr)
        self.next(self.per_lr, foreach="lrs")

    @step
    def per_lr(self):
        self.lr = self.input
        self.lr_index = self.index
        self.depths = tuple(self.grid["depth"])
        self.next(self.per_depth, foreach="depths")

    @step
    def per_depth(self):
        self.spec = ModelSpec(self.lr, self.input)
        self.stack = self.foreach_stack()
        self.my_index = self.index
        self.next(self.fit_a, self.fit_b)

    @step
    def fit_a(self):
        self.variant = "a"
        self.score = self.spec.score(self.X, self.y)
        self.common = "same"
        self.conflict = "from_a"
        self.next(self.pick)

    @step
    def fit_b(self):
        self.variant = "b"
        self.score = self.spec.score(self.X, self.y) * 2
        self.common = "same"
        self.conflict = "from_b"
        self.next(self.pick)

    @step
    def pick(self, inputs):
        self.best_variant = min(inputs, key=lambda i: i.score).variant
        self.best_score = min(inputs.fit_a.score, inputs.fit_b.score)
        self.merge_artifacts(inputs, exclude=["variant", "score", "conflict"])
        self.next(self.join_depth)

    @step
    def join_depth(self, inputs):
        self.results = [(i.spec, i.best_score, i.stack) for i in inputs]
        self.merge_artifacts(inputs, include=["lr", "X", "y", "name", "common"])
        self.next(self.join_lr)

    @step
    def join_lr(self, inputs):
        self.all_results = [r for i in inputs for r in i.results]
        self.lrs_seen = [i.lr for i in inputs]
        self.best = min(self.all_results, key=lambda r: r[1])[0]
        self.merge_artifacts(inputs, include=["name"])
        self.next(self.end)

    @step
    def end(self):
        self.n = len(self.all_results)
        self.end_info = current.pathspec
        print("best", self.best, "n", self.n)


if __name__ == "__main__":
    TrainFlow()
