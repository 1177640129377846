"""`@project(name=...)`: flows that belong together, and the branch a run belongs to.

As in Metaflow: the branch is `user.<you>` by default, `test.<branch>` with `--branch`, `prod` with
`--production` (`prod.<branch>` with both). A run of a project flow gets the system tags
`project:<name>` and `project_branch:<branch>` (so `namespace("project_branch:prod")` finds its
runs) and its tasks see `current.project_name`, `branch_name`, `is_user_branch`,
`is_production` and `project_flow_name` (`<project>.<branch>.<Flow>`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from aflow.exception import AflowException

_INVALID = re.compile(r"[^a-z0-9_]")
MAX_NAME = 128


class ProjectDecorator:
    """The settings of `@project` on a flow class (it may use a Config)."""

    def __init__(self, name: Any = None, branch: Any = None, production: Any = None) -> None:
        self.attributes = {"name": name, "branch": branch, "production": production}

    def __call__(self, flow_cls: type) -> type:
        flow_cls._aflow_project = self  # type: ignore[attr-defined]
        return flow_cls


def project(name: Any = None, branch: Any = None, production: Any = None) -> ProjectDecorator:
    """`@project(name="ranking")` on the flow class."""
    return ProjectDecorator(name, branch, production)


def _check_name(what: str, value: str) -> None:
    if _INVALID.search(value):
        raise AflowException(f"{what} {value!r} may use only lowercase letters, digits and underscores")
    if len(value) > MAX_NAME:
        raise AflowException(f"{what} {value!r} is longer than {MAX_NAME} characters")


@dataclass(frozen=True)
class ProjectSettings:
    """AFLOW_OWNER: whose `user.<owner>` branch a @project run takes by default (else the user)."""

    owner: str | None = None

    @classmethod
    def from_env(cls) -> ProjectSettings:
        return cls(owner=os.environ.get("AFLOW_OWNER") or None)


def branch_of(project_name: str, branch: str | None, production: bool, user: str | None) -> str:
    if not project_name:
        raise AflowException("@project needs a name: @project(name='some_name')")
    _check_name("the @project name", project_name)
    if branch:
        _check_name("the branch name", branch)
        return f"{'prod' if production else 'test'}.{branch}"
    if production:
        return "prod"
    return f"user.{ProjectSettings.from_env().owner or user}"


def project_info(
    flow_cls: type, branch: str | None, production: bool, user: str | None
) -> dict[str, Any] | None:
    """What `current` says of the run's project, or None for a flow without @project. The
    decorator's own branch=/production= and the command line's must not disagree."""
    deco = getattr(flow_cls, "_aflow_project", None)
    if deco is None:
        if branch or production:
            raise AflowException(
                f"--branch/--production need @project on {flow_cls.__name__}: add "
                "@project(name='...') to the flow class"
            )
        return None
    from aflow.config import resolve_delayed

    attributes = resolve_delayed(deco.attributes)
    for option, given in (("branch", branch), ("production", production)):
        own = attributes[option]
        if own is not None and given and own != given:
            raise AflowException(
                f"@project({option}={own!r}) and --{option} on the command line disagree: "
                "keep one of them"
            )
    branch = attributes["branch"] if attributes["branch"] is not None else branch
    production = bool(attributes["production"]) if attributes["production"] is not None else production
    name = attributes["name"]
    branch_name = branch_of(name, branch, production, user)
    return {
        "project_name": name,
        "branch_name": branch_name,
        "is_user_branch": not branch and not production,
        "is_production": production,
        "project_flow_name": f"{name}.{branch_name}.{flow_cls.__name__}",
    }


def project_tags(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    return [f"project:{info['project_name']}", f"project_branch:{info['branch_name']}"]
