"""aflow: Metaflow's authoring model on an asyncio engine.

The public API is what this module exports; everything else may change. Names that pull in the
engine (run_flow, start_flow, the client) load on first use so `import aflow` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aflow.about import VERSION
from aflow.current import current
from aflow.flowspec import FlowSpec
from aflow.parameters import IncludeFile, JSONType, Parameter
from aflow.steps import step

if TYPE_CHECKING:
    from aflow.client import Run, Step, Task
    from aflow.engine.runner import RunningFlow, run_flow, start_flow

__version__ = VERSION

_LAZY = {
    "run_flow": "aflow.engine.runner",
    "resume_flow": "aflow.engine.runner",
    "retry": "aflow.decorators",
    "catch": "aflow.decorators",
    "timeout": "aflow.decorators",
    "environment": "aflow.decorators",
    "secrets": "aflow.decorators",
    "resources": "aflow.decorators",
    "batch": "aflow.decorators",
    "kubernetes": "aflow.decorators",
    "pypi": "aflow.decorators",
    "pypi_base": "aflow.decorators",
    "conda": "aflow.decorators",
    "conda_base": "aflow.decorators",
    "card": "aflow.decorators",
    "start_flow": "aflow.engine.runner",
    "RunningFlow": "aflow.engine.runner",
    "Runner": "aflow.flow_runner",
    "ExecutingRun": "aflow.flow_runner",
    "Flow": "aflow.client",
    "Metaflow": "aflow.client",
    "Run": "aflow.client",
    "Step": "aflow.client",
    "Task": "aflow.client",
    "DataArtifact": "aflow.client",
    "namespace": "aflow.client",
    "get_namespace": "aflow.client",
    "default_namespace": "aflow.client",
    "metadata": "aflow.client",
    "get_metadata": "aflow.client",
    "AsyncFlow": "aflow.client",
    "S3": "aflow.s3",
    "Config": "aflow.config",
    "user_step_decorator": "aflow.user_decorators",
    "UserStepDecorator": "aflow.user_decorators",
    "USER_SKIP_STEP": "aflow.user_decorators",
    "StepMutator": "aflow.mutators",
    "FlowMutator": "aflow.mutators",
    "MutableStep": "aflow.mutators",
    "MutableFlow": "aflow.mutators",
    "project": "aflow.projects",
    "schedule": "aflow.triggers",
    "trigger": "aflow.triggers",
    "trigger_on_finish": "aflow.triggers",
    "config_expr": "aflow.config",
    "AsyncS3": "aflow.s3",
    "profile": "aflow.profiling",
    "parallel_map": "aflow.multicore",
    "parallel_imap_unordered": "aflow.multicore",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aflow' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "S3",
    "USER_SKIP_STEP",
    "AsyncFlow",
    "AsyncS3",
    "Config",
    "DataArtifact",
    "ExecutingRun",
    "Flow",
    "FlowMutator",
    "FlowSpec",
    "IncludeFile",
    "JSONType",
    "Metaflow",
    "MutableFlow",
    "MutableStep",
    "Parameter",
    "Run",
    "Runner",
    "RunningFlow",
    "Step",
    "StepMutator",
    "Task",
    "UserStepDecorator",
    "batch",
    "card",
    "catch",
    "conda",
    "conda_base",
    "config_expr",
    "current",
    "default_namespace",
    "environment",
    "get_metadata",
    "get_namespace",
    "kubernetes",
    "metadata",
    "namespace",
    "parallel_imap_unordered",
    "parallel_map",
    "profile",
    "project",
    "pypi",
    "pypi_base",
    "resources",
    "resume_flow",
    "retry",
    "run_flow",
    "schedule",
    "secrets",
    "start_flow",
    "step",
    "timeout",
    "trigger",
    "trigger_on_finish",
    "user_step_decorator",
]
