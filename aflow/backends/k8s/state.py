"""What the @kubernetes backend knows of the Jobs it created (JobState) and of each task's pod
(PodState), typed: plain data and the events the backend waits on. No API calls, no decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from aflow.backends.k8s.logs import LogFollow
from aflow.backends.remote import JobGroup, RemoteTask


@dataclass(eq=False)
class PodState:
    """One task of a Job (its index) and the pod that runs it."""

    task: RemoteTask
    job: JobState
    index: int
    pod: str | None = None  # the index's first pod: it decides (no pod is ever retried)
    last: dict[str, Any] | None = None  # the pod as last seen (a relist without it: deleted)
    ending: bool = False  # the pod has ended; its log is being drained
    abandoned: bool = False  # stopped alone (a @timeout): a late pod of it is deleted on sight
    log: LogFollow | None = None  # its log, followed while the pod runs
    pulling: str | None = None  # why its image is not pulled yet, while it is not
    pull_error: str | None = None  # ErrImagePull's words (the registry's), kept through backoff
    pull_deadline: bool = False  # a deadline for the pull is running


@dataclass(eq=False)
class JobState:
    """One Job of a group of tasks (an Indexed Job for a foreach's children)."""

    group: JobGroup
    namespace: str
    name: str
    pods: list[PodState] = field(default_factory=list)  # by completion index
    created: bool = False  # the Job watch has seen it
    deleted: bool = False  # every unfinished task of it was stopped: the Job is deleted
    ran: bool = False  # a pod of it got its image: a sibling's failed pull is its own
    doomed: bool = False  # no pod of it can start: its tasks are being failed
    unschedulable: str | None = None  # the scheduler's words while pods wait for room
    create_error: str | None = None  # a FailedCreate event's message (and what to change)
    told_create: bool = False  # that message was written to a log once
    create_deadline: bool = False  # a deadline for creating any pod is running
    end: str | None = None  # once the Job has ended: "complete", or why it failed
    failed: str | None = None  # why it failed, when it did
    ended: anyio.Event = field(default_factory=anyio.Event)  # set with `end`

    def finish(self, why: str | None) -> None:
        """The Job watch saw the Job end: complete (None) or failed (why)."""
        self.end = why or "complete"
        self.failed = why
        self.ended.set()

    @property
    def stopped_some(self) -> bool:
        return any(p.abandoned for p in self.pods)

    @property
    def has_pods(self) -> bool:
        return any(p.pod is not None for p in self.pods)
