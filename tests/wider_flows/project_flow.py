"""A @project flow with the deploy-time decorators a local run records but does not act on."""

from aflow import FlowSpec, current, project, schedule, step, trigger, trigger_on_finish


@trigger_on_finish(flow="UpstreamFlow")
@trigger(event="data_ready")
@schedule(hourly=True)
@project(name="demo")
class ProjectFlow(FlowSpec):
    @step
    def start(self):
        self.project = (
            current.project_name,
            current.branch_name,
            current.is_user_branch,
            current.is_production,
            current.project_flow_name,
        )
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProjectFlow()
