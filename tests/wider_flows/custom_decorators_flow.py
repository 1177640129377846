"""Custom decorators: generator decorators (wrap, skip, handle an error), a UserStepDecorator
class, a StepMutator and a FlowMutator driven by a Config."""

from aflow import (
    Config,
    FlowMutator,
    FlowSpec,
    Parameter,
    StepMutator,
    UserStepDecorator,
    environment,
    step,
    user_step_decorator,
)


@user_step_decorator
def tagged(step_name, flow, inputs, attributes):
    flow.trail = [*getattr(flow, "trail", []), f"before {step_name} {attributes.get('label')}"]
    yield
    flow.trail = [*flow.trail, f"after {step_name}"]


@user_step_decorator
def skipped(step_name, flow, inputs):
    flow.skipped_by = step_name
    yield {}


@user_step_decorator
def forgiving(step_name, flow, inputs):
    try:
        yield
    except ValueError as e:
        flow.forgiven = str(e)


class Counted(UserStepDecorator):
    def init(self, start=0):
        self.start = start

    def pre_step(self, step_name, flow, inputs=None):
        flow.count = self.start + 1

    def post_step(self, step_name, flow, exception=None):
        flow.count += 1
        return exception, None


class WithEnv(StepMutator):
    def init(self, value):
        self.value = value

    def mutate(self, mutable_step):
        mutable_step.add_decorator(environment, deco_kwargs={"vars": {"MUTATED": self.value}})


class EveryStepTagged(FlowMutator):
    def pre_mutate(self, mutable_flow):
        mutable_flow.add_parameter("added", Parameter("added", default=mutable_flow.cfg.extra))

    def mutate(self, mutable_flow):
        mutable_flow.add_decorator("project", deco_kwargs={"name": "mutated_project"})
        for name, s in mutable_flow.steps:
            if name == "end":
                s.add_decorator(tagged, deco_kwargs={"label": "mutated"})


@EveryStepTagged
class CustomDecoratorsFlow(FlowSpec):
    cfg = Config("cfg", default_value={"extra": 7})

    @WithEnv("yes")
    @Counted(start=10)
    @tagged(label="x")
    @step
    def start(self):
        import os

        self.env = os.environ.get("MUTATED")
        self.ran = True
        self.next(self.middle)

    @skipped
    @step
    def middle(self):
        self.should_not_exist = True
        self.next(self.fails)

    @forgiving
    @step
    def fails(self):
        if self.ran:
            raise ValueError("bad but forgiven")
        self.next(self.end)

    @step
    def end(self):
        from aflow import current

        self.final = self.added
        self.project = current.project_name


if __name__ == "__main__":
    CustomDecoratorsFlow()
