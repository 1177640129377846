"""The @kubernetes backend: runs remote steps as batch/v1 Jobs through the Kubernetes API
(kubernetes-asyncio), on top of the shared bookkeeping in backends/remote.py. The Job's manifest is
built in manifests.py, what pods and Jobs say is read in status.py, watches are in watch.py and
logs in logs.py; this module holds the bookkeeping between them.

One Job per group of tasks the base class gathers: a plain Job for one task, an Indexed Job
(`completionMode: Indexed`) for a foreach's children, whose pods pick their TaskSpec by
JOB_COMPLETION_INDEX. aflow does retries itself (as new Jobs), so a Job never retries a pod: a plain
Job has `backoffLimit: 0`, an Indexed one `backoffLimitPerIndex: 0` (Kubernetes 1.29+), so a pod
lost to the platform (OOMKilled, evicted, deleted) fails its own index only and the Job runs its
other indexes on; the Job fails (FailedIndexes) once all are done. On an older API server an
Indexed Job falls back to `backoffLimit: 0`, where the first failed pod fails the whole Job.

What the cluster costs the scheduler, whatever the number of tasks: per namespace in use, ONE pod
watch and ONE Job watch, each a label selector on this run; one log-follow stream per pod while it
runs, none per waiting task; one POST per group and one DELETE per group stopped. Nothing polls.

Configuration: AFLOW_KUBERNETES_HOST (an API URL, no auth: a `kubectl proxy`, or the tests' emulator),
else the kube config (KUBECONFIG, ~/.kube/config; AFLOW_KUBERNETES_CONTEXT picks a context), else the
in-cluster service account. Namespace: @kubernetes(namespace=), else AFLOW_KUBERNETES_NAMESPACE, else
"default"; image: @kubernetes(image=), else AFLOW_KUBERNETES_IMAGE, else AFLOW_DEFAULT_IMAGE, else
python:<this version>; service account: @kubernetes(service_account=), else
AFLOW_KUBERNETES_SERVICE_ACCOUNT.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import anyio.abc
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.errors import BackendUnavailable, JobRefused
from aflow.backends.k8s import manifests
from aflow.backends.k8s.api import REQUEST_SECONDS, TRANSIENT, error_text, refusal
from aflow.backends.k8s.auth import CredentialsError, clients
from aflow.backends.k8s.logs import DRAIN_SECONDS, LOG_STREAMS, LogFollow, follow_log, read_log
from aflow.backends.k8s.manifests import INDEX_KEY, JOB_LABEL, RUN_LABEL, dns_label
from aflow.backends.k8s.status import (
    FATAL_WAITING,
    container_ran,
    create_refusal,
    exit_of,
    indexes,
    job_conditions,
    server_version,
)
from aflow.backends.k8s.watch import list_all, watch_forever
from aflow.backends.remote import JobGroup, RemoteBackend, RemoteContext, RemoteTask, bootstrap_command
from aflow.engine.wire import TaskExit
from aflow.exception import AflowException

log = logging.getLogger("aflow.kubernetes")

# How long the pod watch may lag the Job watch: a failed Job's indexes that no pod was seen for
# after this long never ran (the Job controller stopped making pods).
SETTLE_SECONDS = 2.0
PER_INDEX_SINCE = (1, 29)  # backoffLimitPerIndex: beta (on by default) in 1.29, GA in 1.33
CREATE_EVENTS = "involvedObject.kind=Job,reason=FailedCreate"
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff"}


class KubernetesBackend(RemoteBackend):
    """@kubernetes steps as Jobs (an Indexed Job per foreach group), followed by one pod watch and
    one Job watch per namespace; stopping the run deletes its Jobs."""

    name = "kubernetes"
    platform = "Kubernetes"
    # The API's own limit on an Indexed Job's completions (and parallelism): 10^5.
    max_group = 100_000
    stuck_state = ("Pending",)
    image_setting = "AFLOW_KUBERNETES_IMAGE"

    def __init__(self, ctx: RemoteContext) -> None:
        super().__init__(ctx)
        self._api: client.ApiClient | None = None
        # Logs have their own connection pool: following them never starves the control calls.
        self._log_api: client.ApiClient | None = None
        self._groups: dict[tuple[str, str], JobGroup] = {}  # (namespace, Job name) -> its tasks
        self._watched: set[str] = set()
        self._work: anyio.abc.TaskGroup | None = None
        self._work_ready = anyio.Event()
        self._serial = itertools.count()
        self._run_key = hashlib.sha256(f"{ctx.flow_name}/{ctx.run_id}".encode()).hexdigest()[:16]
        self._selector = f"{RUN_LABEL}={self._run_key}"
        self._per_index = True  # Indexed Jobs fail index by index (the API server is 1.29+)
        self._credentials_error: str | None = None
        self._restricted, self._run_as_user = _pod_security()
        self._ttl_seconds = _ttl_seconds()
        self.create_seconds = float(os.environ.get("AFLOW_KUBERNETES_CREATE_SECONDS") or 120)
        self.pull_seconds = float(os.environ.get("AFLOW_KUBERNETES_IMAGE_PULL_SECONDS") or 300)

    # -- client ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        self._api, self._log_api, host = await clients(LOG_STREAMS)
        try:  # unreachable or refused: say so now, not as every task's failure
            with anyio.fail_after(REQUEST_SECONDS):
                info = await client.VersionApi(self._api).get_code()
        except Exception as e:
            await self._close()
            raise BackendUnavailable(
                f"@kubernetes: cannot reach the Kubernetes API at {host}: {error_text(e)} (set "
                "AFLOW_KUBERNETES_HOST, or KUBECONFIG / AFLOW_KUBERNETES_CONTEXT)"
            ) from None
        self._per_index = server_version(info) >= PER_INDEX_SINCE

    async def _close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._api is not None and self._watched:
                with anyio.move_on_after(REQUEST_SECONDS), contextlib.suppress(Exception):
                    await self._sweep()
            for api in (self._api, self._log_api):
                if api is not None:
                    with contextlib.suppress(Exception):
                        await api.close()
            self._api = self._log_api = None

    async def _sweep(self) -> None:
        """Delete this run's Jobs that have not ended: whatever escaped the bookkeeping (a Job
        created while its submission was being cancelled, an index stopped on its own)."""
        assert self._api is not None
        batch = client.BatchV1Api(self._api)
        for ns in self._watched:
            items, _ = await list_all(batch.list_namespaced_job, ns, self._selector)
            for job in items:
                if not job_conditions(job):
                    await self._delete_job(ns, job["metadata"]["name"])

    # -- submitting ----------------------------------------------------------------------------------

    async def _submit(self, group: JobGroup) -> None:
        if self._credentials_error is not None:
            raise BackendUnavailable(self._credentials_error)
        own = group.decorators.get(self.name, {})
        ns = own.get("namespace") or os.environ.get("AFLOW_KUBERNETES_NAMESPACE") or "default"
        name = self._job_name(group.step)
        group.extra.update(namespace=ns, name=name)
        group.job_id = name  # before the POST: the watch may see its pods before the POST returns
        for index, task in enumerate(group.tasks):
            task.extra["group"] = group
            task.job_id = f"{name}#{index}" if group.is_array else name
        if all(t.exit is not None for t in group.tasks):
            raise AflowException("every task of the job was stopped before it was created")
        body = manifests.job_manifest(
            name=name,
            namespace=ns,
            step=group.step,
            flow_name=self.ctx.flow_name,
            run_id=self.ctx.run_id,
            run_key=self._run_key,
            pathspec=None if group.is_array else group.tasks[0].spec.pathspec,
            count=len(group.tasks),
            parallelism=self.ctx.max_workers,
            per_index=self._per_index,
            image=self.image(group),
            command=bootstrap_command(),
            env=await self._env(group),
            amount=manifests.quantities(self.resources(group)),
            own=own,
            service_account=own.get("service_account")
            or os.environ.get("AFLOW_KUBERNETES_SERVICE_ACCOUNT"),
            restricted=self._restricted,
            run_as_user=self._run_as_user,
            ttl_seconds=self._ttl_seconds,
        )
        self._groups[(ns, name)] = group
        await self._ensure_watch(ns)
        try:
            await self._create(ns, body)
        except BaseException:
            self._groups.pop((ns, name), None)
            raise
        stopped = [t for t in group.tasks if t.exit is not None]
        if group.extra.get("deleted") or len(stopped) == len(group.tasks):
            await self._delete_job(ns, name)  # stopped while the POST was on its way
        elif stopped:
            await self._stop_some(group, stopped)
        assert self._work is not None
        self._work.start_soon(self._after_submit, group)

    def _job_name(self, step: str) -> str:
        # <= 52 characters: an Indexed Job's pods are named <job>-<index>-<5 chars> and their
        # hostname <job>-<index> must stay a DNS label (<= 63).
        return f"aflow-{dns_label(step, 22)}-{self._run_key[:10]}-{next(self._serial)}"

    async def _env(self, group: JobGroup) -> list[dict[str, Any]]:
        env = await self.container_env(group)
        # A step's own exception is in its task record; exiting 0 keeps the pod (and the Job)
        # Succeeded, so that only what the platform did to a pod shows as a failed pod or index
        # (and, on a pre-1.29 cluster, backoffLimit 0 would stop all indexes on a failed pod).
        env["AFLOW_RECORDED_FAILURE_EXIT"] = "0"
        return manifests.env_entries(env, group.is_array)

    async def _create(self, ns: str, body: dict[str, Any]) -> None:
        assert self._api is not None
        batch = client.BatchV1Api(self._api)
        name = body["metadata"]["name"]
        for attempt in itertools.count():
            try:
                made = await batch.create_namespaced_job(ns, body, _request_timeout=REQUEST_SECONDS)
                if "backoffLimitPerIndex" in body["spec"] and made.spec.backoff_limit_per_index is None:
                    # The server dropped the field (its JobBackoffLimitPerIndex gate is off): the
                    # Job would retry pods up to the default backoffLimit. Stop it; later Jobs use
                    # backoffLimit 0, and these tasks fail as platform failures (@retry reruns them).
                    self._per_index = False
                    await self._delete_job(ns, name)
                    raise AflowException(
                        f"Job {name} in namespace {ns}: the API server ignored backoffLimitPerIndex "
                        "(feature gate JobBackoffLimitPerIndex off?); the Job was deleted"
                    )
                return
            except ApiException as e:
                if e.status == 409 and attempt > 0:
                    return  # an earlier attempt got through before its answer was lost
                if e.status not in TRANSIENT or attempt >= 4:
                    raise JobRefused(refusal(e, name, ns)) from None
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt >= 4:
                    raise BackendUnavailable(f"Job {name} (namespace {ns}): {error_text(e)}") from None
            await anyio.sleep(0.5 * 2**attempt * random.uniform(0.5, 1.5))

    async def _after_submit(self, group: JobGroup) -> None:
        """Tasks may all have finished while the POST was on its way, before the base class
        registered the group: once it has, retire the group if so."""
        with anyio.move_on_after(10):
            while group.job_id not in self.active and any(t.exit is None for t in group.tasks):
                await anyio.sleep(0.01)
        self._forget(group)

    def capacity_hint(self, group: JobGroup) -> str:
        asked = ", ".join(f"{k}={v}" for k, v in manifests.quantities(self.resources(group)).items())
        hint = f"nodes with room for {asked} in namespace {group.extra.get('namespace')}"
        why = group.extra.get("unschedulable")
        return f"{hint}; the scheduler says: {why}" if why else hint

    # -- watching ------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        async with anyio.create_task_group() as tg:
            self._work = tg
            self._work_ready.set()
            await anyio.sleep_forever()

    async def _ensure_watch(self, ns: str) -> None:
        if ns in self._watched:
            return
        self._watched.add(ns)
        await self._work_ready.wait()
        assert self._work is not None and self._api is not None
        core, batch = client.CoreV1Api(self._api), client.BatchV1Api(self._api)
        pods, jobs = core.list_namespaced_pod, batch.list_namespaced_job
        self._spawn(
            watch_forever, pods, ns, self._selector, self._on_pod,
            lambda items: self._relisted(ns, True, items, self._on_pod),
        )  # fmt: skip
        self._spawn(
            watch_forever, jobs, ns, self._selector, self._on_job,
            lambda items: self._relisted(ns, False, items, self._on_job),
        )  # fmt: skip
        # Pods the API server refuses to create (quota, Pod Security, LimitRange, a missing
        # service account) leave their Job only FailedCreate events: one watch of those.
        events = core.list_namespaced_event
        self._spawn(
            watch_forever, events, ns, "", self._on_event, self._events_listed, CREATE_EVENTS, True
        )

    def _relisted(
        self,
        ns: str,
        pods: bool,
        items: list[dict[str, Any]],
        handle: Callable[[str, dict[str, Any]], None],
    ) -> None:
        for obj in items:
            handle("MODIFIED", obj)
        # What the bookkeeping knows and the list no longer has was deleted while no watch ran.
        listed = {obj["metadata"]["name"] for obj in items}
        for (group_ns, name), group in list(self._groups.items()):
            if group_ns != ns:
                continue
            if pods:
                for task in group.tasks:
                    last = task.extra.get("last")
                    if last is not None and last["metadata"]["name"] not in listed:
                        handle("DELETED", last)
            elif name not in listed and group.job_id is not None and "created" in group.extra:
                handle("DELETED", {"metadata": {"name": name, "namespace": ns}, "status": {}})

    def _group_of(self, obj: dict[str, Any]) -> JobGroup | None:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        return self._groups.get((meta.get("namespace", ""), labels.get(JOB_LABEL, "")))

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        group = self._group_of(obj)
        if group is None:
            return
        meta, status = obj["metadata"], obj.get("status") or {}
        where = (meta.get("annotations") or {}).get(INDEX_KEY) or meta["labels"].get(INDEX_KEY) or "0"
        index = int(where)
        if not 0 <= index < len(group.tasks):
            return
        task = group.tasks[index]
        name = meta["name"]
        if task.exit is not None:
            if task.extra.get("abandoned") and kind != "DELETED" and not meta.get("deletionTimestamp"):
                self._spawn(self._delete_pod, group.extra["namespace"], name)  # stopped before it ran
            return
        if task.extra.get("pod", name) != name or task.extra.get("ending"):
            return  # the index's first pod decides (backoffLimit[PerIndex] 0: no second)
        task.extra["pod"] = name
        task.extra["last"] = obj
        phase = status.get("phase") or "Pending"
        if kind == "DELETED" or phase in ("Succeeded", "Failed"):
            task.extra["ending"] = True
            self._spawn(self._end, group, task, obj)
            return
        task.extra["phase"] = phase
        self.set_state(task, phase)
        if phase == "Pending":
            self._pending_pod(group, task, obj)
        else:
            group.extra["ran"] = True  # its image was pulled: a sibling's pull failing is local
            task.extra.pop("pulling", None)
        if phase == "Running" and "log" not in task.extra:
            follow = task.extra["log"] = LogFollow(name)
            assert self._log_api is not None
            self._spawn(follow_log, self._log_api, group.extra["namespace"], task, follow)

    def _pending_pod(self, group: JobGroup, task: RemoteTask, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        task.extra.pop("pulling", None)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                group.extra["unschedulable"] = cond.get("message") or cond.get("reason")
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING and "doomed" not in group.extra:
                group.extra["doomed"] = True
                why = (
                    f"pod {obj['metadata']['name']} cannot start: {waiting['reason']}: "
                    f"{waiting.get('message') or ''} (image {cs.get('image')})"
                ).rstrip()
                self._spawn(self._doom, group, why)
            elif waiting.get("reason") in PULL_WAITING:
                # Often transient (a registry's hiccup or rate limit): waited for, boundedly.
                said = f"{waiting['reason']}: {waiting.get('message') or ''}"
                if waiting["reason"] == "ErrImagePull":  # the registry's own words: kept
                    task.extra["pull_error"] = said
                else:
                    said = task.extra.get("pull_error") or said
                task.extra["pulling"] = f"{said} (image {cs.get('image')})"
                if "pull_deadline" not in task.extra:
                    task.extra["pull_deadline"] = True
                    self._spawn(self._pull_deadline, group, task, obj["metadata"]["name"])

    async def _pull_deadline(self, group: JobGroup, task: RemoteTask, pod: str) -> None:
        """A pod still failing to pull its image after pull_seconds fails: its whole group when no
        pod of the group ever got its image (the image is likely wrong), else only its task (its
        pod deleted: its index fails alone, and @retry may run it again)."""
        await anyio.sleep(self.pull_seconds)
        pulling = task.extra.get("pulling")
        if task.exit is not None or not pulling or task.extra.get("pod") != pod:
            return
        why = (
            f"pod {pod} could not pull its image for {self.pull_seconds:.0f} s "
            f"(AFLOW_KUBERNETES_IMAGE_PULL_SECONDS): {pulling}; is the image name right, and can "
            "the nodes reach its registry (and its pull secret)?"
        )
        if not group.extra.get("ran") and "doomed" not in group.extra:
            group.extra["doomed"] = True
            await self._doom(group, why)
            return
        task.extra["abandoned"] = True
        await task.logs.line("stderr", f"[aflow] {why}")
        task.finish(TaskExit(1, why))
        await self._delete_pod(group.extra["namespace"], pod)
        self._forget(group)

    def _events_listed(self, items: list[dict[str, Any]]) -> None:
        for obj in items:
            self._on_event("ADDED", obj)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        """A FailedCreate event of one of this run's Jobs. While none of its pods exists: a refusal
        waiting cannot help fails the Job's tasks now, another (a full quota) after
        AFLOW_KUBERNETES_CREATE_SECONDS; once some of its pods run, the rest wait for room."""
        involved = obj.get("involvedObject") or {}
        ns = involved.get("namespace") or obj["metadata"].get("namespace", "")
        group = self._groups.get((ns, involved.get("name", "")))
        if kind == "DELETED" or group is None or "job_end" in group.extra or "doomed" in group.extra:
            return
        message = str(obj.get("message") or obj.get("note") or "")
        permanent, hint = create_refusal(message)
        group.extra["create_error"] = f"{message} ({hint})" if hint else message
        if any("pod" in t.extra for t in group.tasks):
            if not group.extra.get("told_create"):
                group.extra["told_create"] = True
                self._spawn(self._tell_waiting, group, f"[aflow] {group.extra['create_error']}")
        elif permanent:
            group.extra["doomed"] = True
            name = group.extra["name"]
            why = f"Kubernetes refused to create the pods of Job {name}: {group.extra['create_error']}"
            self._spawn(self._doom, group, why)
        elif "create_deadline" not in group.extra:
            group.extra["create_deadline"] = True
            self._spawn(self._create_deadline, group)

    async def _tell_waiting(self, group: JobGroup, line: str) -> None:
        waiting = [t for t in group.tasks if t.exit is None and "pod" not in t.extra]
        if waiting:
            await waiting[0].logs.line("stderr", line)

    async def _create_deadline(self, group: JobGroup) -> None:
        """A Job none of whose pods could be created for create_seconds fails its tasks."""
        await self._tell_waiting(group, f"[aflow] waiting: {group.extra['create_error']}")
        await anyio.sleep(self.create_seconds)
        if any("pod" in t.extra for t in group.tasks) or "job_end" in group.extra:
            return
        if "doomed" not in group.extra:
            group.extra["doomed"] = True
            await self._doom(
                group,
                f"Kubernetes could not create any pod of Job {group.extra['name']} for "
                f"{self.create_seconds:.0f} s (AFLOW_KUBERNETES_CREATE_SECONDS): "
                f"{group.extra['create_error']}",
            )

    def _on_job(self, kind: str, obj: dict[str, Any]) -> None:
        group = self._group_of(obj) or self._groups.get(
            (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        )
        if group is None:
            return
        group.extra["created"] = True
        if "job_end" in group.extra:
            return
        conds = job_conditions(obj)
        name = obj["metadata"]["name"]
        if "Failed" in conds:
            cond = conds["Failed"]
            why = f"its Job {name} failed: {cond.get('reason')}: {cond.get('message')}"
        elif "Complete" in conds:
            why = None
        elif kind == "DELETED":
            why = f"its Job {name} was deleted"
        else:
            return
        group.extra["job_end"] = why or "complete"
        if why:
            group.extra["job_failed"] = why
        status = obj.get("status") or {}
        done = indexes(status.get("completedIndexes")), indexes(status.get("failedIndexes"))
        self._spawn(self._settle, group, why, *done)

    async def _settle(
        self, group: JobGroup, why: str | None, completed: set[int], failed: set[int]
    ) -> None:
        """The Job has ended: finish the tasks whose pods were not seen (the controller makes no
        more pods for a failed Job; or the pod watch lags) by what the Job's status says of their
        index; tasks with a pod are finished from it. A Job that failed by index (FailedIndexes)
        ran every index: its Failed condition is no failure of the indexes that completed."""
        await anyio.sleep(SETTLE_SECONDS)
        for index, task in enumerate(group.tasks):
            if task.exit is None and "pod" not in task.extra:
                if why is None or index in completed:
                    task.finish(TaskExit(0))  # the Job says it succeeded; the record tells the rest
                elif index in failed:
                    task.finish(TaskExit(1, f"{why} (index {index} failed)"))
                else:
                    task.finish(TaskExit(1, f"{why} (index {index} never ran)"))
        self._forget(group)

    # -- a pod's end and its log --------------------------------------------------------------------

    async def _end(self, group: JobGroup, task: RemoteTask, obj: dict[str, Any]) -> None:
        """Drain the pod's log, then finish its task with the container's exit."""
        follow: LogFollow | None = task.extra.get("log")
        if follow is not None and follow.connected:
            follow.ending.set()
            with anyio.move_on_after(DRAIN_SECONDS):
                await follow.done.wait()
            follow.scope.cancel()
        else:
            sent = 0
            if follow is not None:  # still waiting for a connection: read the whole log instead
                follow.scope.cancel()
                await follow.done.wait()
                sent = follow.sent
            if container_ran(obj):
                with anyio.move_on_after(DRAIN_SECONDS), contextlib.suppress(Exception):
                    assert self._api is not None
                    ns = group.extra["namespace"]
                    await read_log(self._api, ns, task, obj["metadata"]["name"], sent)
        exit = exit_of(obj)
        if exit.returncode and obj["metadata"].get("deletionTimestamp"):
            # Killed by a deletion: when its Job failed (another index did), say that, not "143".
            with anyio.move_on_after(SETTLE_SECONDS):
                while "job_end" not in group.extra:
                    await anyio.sleep(0.05)
            if group.extra.get("job_failed"):
                exit = TaskExit(exit.returncode, f"{exit.reason}; {group.extra['job_failed']}")
        task.extra.pop("last", None)
        task.finish(exit)
        self._forget(group)

    # -- stopping ------------------------------------------------------------------------------------

    async def _terminate(self, tasks: list[RemoteTask]) -> None:
        """Stop these tasks. A group all of whose unfinished tasks stop loses its Job (and, by
        propagation, its pods); when only some indexes of an Indexed Job stop (a @timeout),
        only their pods are deleted, and an index whose pod is not made yet is deleted when it
        appears. With backoffLimitPerIndex 0 a deleted pod fails its own index only: the other
        indexes run on (the Job ends Failed, FailedIndexes, which fails none of them). NB on a
        pre-1.29 cluster (backoffLimit 0) it fails the whole Job: the other tasks fail as platform
        failures (which @retry retries), naming the Job's failure."""
        groups: dict[int, tuple[JobGroup, list[RemoteTask]]] = {}
        for task in tasks:
            group = task.extra.get("group")
            if group is None:  # being submitted: _submit sees it finished and stops it
                task.finish(TaskExit(143, "stopped by aflow"))
                continue
            groups.setdefault(id(group), (group, []))[1].append(task)
        async with anyio.create_task_group() as tg:
            for group, stopping in groups.values():
                unfinished = [t for t in group.tasks if t.exit is None]
                if all(t in stopping for t in unfinished):
                    group.extra["deleted"] = True
                    if "name" in group.extra:
                        tg.start_soon(self._delete_job, group.extra["namespace"], group.extra["name"])
                else:
                    tg.start_soon(self._stop_some, group, stopping)
                for task in stopping:
                    follow = task.extra.get("log")
                    if follow is not None:
                        follow.scope.cancel()
                    task.finish(TaskExit(143, "stopped by aflow"))
        for group, _ in groups.values():
            self._forget(group)

    async def _stop_some(self, group: JobGroup, stopping: list[RemoteTask]) -> None:
        for task in stopping:
            task.extra["abandoned"] = True
        async with anyio.create_task_group() as tg:
            for task in stopping:
                if "pod" in task.extra:
                    tg.start_soon(self._delete_pod, group.extra["namespace"], task.extra["pod"])

    async def _delete_job(self, ns: str, name: str) -> None:
        assert self._api is not None
        # Background: without a propagation policy batch/v1 orphans the pods, which keep running.
        await self._delete(
            f"Job {name}",
            lambda: client.BatchV1Api(self._api).delete_namespaced_job(
                name, ns, propagation_policy="Background", _request_timeout=REQUEST_SECONDS
            ),
        )

    async def _delete_pod(self, ns: str, name: str) -> None:
        assert self._api is not None
        await self._delete(
            f"pod {name}",
            lambda: client.CoreV1Api(self._api).delete_namespaced_pod(
                name, ns, _request_timeout=REQUEST_SECONDS
            ),
        )

    async def _delete(self, what: str, call: Callable[[], Any]) -> None:
        """Idempotent: gone already (404) is done. Never raises: stopping must not break the run's
        teardown; what could not be stopped is logged (and swept at the run's end)."""
        for attempt in range(4):
            try:
                await call()
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if e.status not in TRANSIENT or attempt == 3:
                    log.warning("could not delete Kubernetes %s: %s", what, error_text(e))
                    return
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt == 3:
                    log.warning("could not delete Kubernetes %s: %s", what, error_text(e))
                    return
            except CredentialsError as e:
                log.warning("could not delete Kubernetes %s: %s", what, e)
                return
            await anyio.sleep(0.3 * 2**attempt)

    async def _doom(self, group: JobGroup, why: str) -> None:
        """No pod of this group can start (its image or config is wrong): stop its Job and fail
        its tasks with the reason rather than wait for capacity that will not help."""
        with contextlib.suppress(Exception):
            await self._delete_job(group.extra["namespace"], group.extra["name"])
        for task in group.tasks:
            if task.exit is None:
                await task.logs.line("stderr", f"[aflow] {why}")
                task.finish(TaskExit(1, why))
        self._forget(group)

    # -- helpers -------------------------------------------------------------------------------------

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._work is not None
        self._work.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except CredentialsError as e:
            await self._credentials_failed(str(e))

    async def _credentials_failed(self, why: str) -> None:
        """The cluster's credentials are gone for good: fail every task still waiting, now, with
        what to do (rather than retry against 401s until the run is stopped)."""
        if self._credentials_error is None:
            self._credentials_error = why
            log.error("%s", why)
        for group in list(self._groups.values()):
            for task in group.tasks:
                if task.exit is None:
                    await task.logs.line("stderr", f"[aflow] {why}")
                    task.finish(TaskExit(1, why))
            self._forget(group)

    def _forget(self, group: JobGroup) -> None:
        """Once every task of a group has finished: drop it here and in the base class (a group
        with stopped indexes stays known, so their late pods are deleted on sight)."""
        if all(t.exit is not None for t in group.tasks):
            self.retire(group)
            key = (group.extra.get("namespace", ""), group.extra.get("name", ""))
            abandoned = any(t.extra.get("abandoned") for t in group.tasks)
            if self._groups.get(key) is group and not abandoned:
                del self._groups[key]


def _pod_security() -> tuple[bool, int | None]:
    """AFLOW_KUBERNETES_POD_SECURITY (restricted, the default, or none) and
    AFLOW_KUBERNETES_RUN_AS_USER (a uid, 1000 by default, or "image": the image's own user, which
    must then not be root)."""
    level = (os.environ.get("AFLOW_KUBERNETES_POD_SECURITY") or "restricted").strip().lower()
    if level not in ("restricted", "none"):
        raise AflowException(
            f"AFLOW_KUBERNETES_POD_SECURITY={level!r}: use 'restricted' (the default) or 'none'"
        )
    user = (os.environ.get("AFLOW_KUBERNETES_RUN_AS_USER") or "1000").strip()
    if user == "image":
        return level == "restricted", None
    if not user.isdigit() or int(user) == 0:
        raise AflowException(
            f"AFLOW_KUBERNETES_RUN_AS_USER={user!r}: a non-zero uid, or 'image' (the image's user)"
        )
    return level == "restricted", int(user)


def _ttl_seconds() -> int | None:
    """AFLOW_KUBERNETES_TTL_SECONDS: how long a finished Job (and its pods) stays (3600 by
    default; "none": until deleted by hand)."""
    value = (os.environ.get("AFLOW_KUBERNETES_TTL_SECONDS") or "3600").strip().lower()
    if value == "none":
        return None
    if not value.isdigit():
        raise AflowException(f"AFLOW_KUBERNETES_TTL_SECONDS={value!r}: a number of seconds, or 'none'")
    return int(value)
