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

Configuration (settings.py, read once per backend): AFLOW_KUBERNETES_HOST (an API URL, no auth: a
`kubectl proxy`, or the tests' emulator), else the kube config (KUBECONFIG, ~/.kube/config;
AFLOW_KUBERNETES_CONTEXT picks a context), else the in-cluster service account. Namespace:
@kubernetes(namespace=), else AFLOW_KUBERNETES_NAMESPACE, else "default"; image:
@kubernetes(image=), else AFLOW_KUBERNETES_IMAGE, else AFLOW_DEFAULT_IMAGE, else python:<this
version>; service account: @kubernetes(service_account=), else AFLOW_KUBERNETES_SERVICE_ACCOUNT.
What the backend knows of each Job and pod is in state.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
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
from aflow.backends.k8s.settings import KubernetesSettings
from aflow.backends.k8s.state import JobState, PodState
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
    """Runs @kubernetes tasks as batch/v1 Jobs: one Job per group of tasks the base class gathers
    (an Indexed Job for a foreach's children), followed by one pod watch, one Job watch and one
    FailedCreate-event watch per namespace in use; stopping the run deletes its Jobs.

    State: a JobState per Job it created, keyed by (namespace, name), and a PodState per task
    (the index's pod, its log); both are dropped once every task of the Job has finished. The
    watches call the `_on_*` handlers, which change that state and spawn what must wait (a pod's
    end, a deadline) into the backend's task group. Settings: KubernetesSettings, read once.
    """

    name = "kubernetes"
    platform = "Kubernetes"
    # The API's own limit on an Indexed Job's completions (and parallelism): 10^5.
    max_group = 100_000
    stuck_state = ("Pending",)
    image_setting = "AFLOW_KUBERNETES_IMAGE"

    def __init__(self, ctx: RemoteContext, settings: KubernetesSettings | None = None) -> None:
        super().__init__(ctx)
        self.settings = settings or KubernetesSettings.from_env()
        self._api: client.ApiClient | None = None
        # Logs have their own connection pool: following them never starves the control calls.
        self._log_api: client.ApiClient | None = None
        self._jobs: dict[tuple[str, str], JobState] = {}  # (namespace, Job name) -> its state
        self._pods: dict[RemoteTask, PodState] = {}  # a task of a Job -> its pod's state
        self._watched: set[str] = set()
        self._work: anyio.abc.TaskGroup | None = None
        self._work_ready = anyio.Event()
        self._serial = itertools.count()
        self._run_key = hashlib.sha256(f"{ctx.flow_name}/{ctx.run_id}".encode()).hexdigest()[:16]
        self._selector = f"{RUN_LABEL}={self._run_key}"
        self._per_index = True  # Indexed Jobs fail index by index (the API server is 1.29+)
        self._credentials_error: str | None = None

    @property
    def create_seconds(self) -> float:
        return self.settings.create_seconds

    @property
    def pull_seconds(self) -> float:
        return self.settings.pull_seconds

    # -- client ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        self._api, self._log_api, host = await clients(self.settings, LOG_STREAMS)
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
        ns = own.get("namespace") or self.settings.namespace
        name = self._job_name(group.step)
        job = JobState(group, ns, name)
        group.job_id = name  # before the POST: the watch may see its pods before the POST returns
        for index, task in enumerate(group.tasks):
            job.pods.append(PodState(task, job, index))
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
            service_account=own.get("service_account") or self.settings.service_account,
            restricted=self.settings.restricted,
            run_as_user=self.settings.run_as_user,
            ttl_seconds=self.settings.ttl_seconds,
        )
        self._jobs[(ns, name)] = job
        self._pods.update((p.task, p) for p in job.pods)
        await self._ensure_watch(ns)
        try:
            await self._create(ns, body)
        except BaseException:
            self._drop(job)
            raise
        stopped = [p for p in job.pods if p.task.exit is not None]
        if job.deleted or len(stopped) == len(job.pods):
            await self._delete_job(ns, name)  # stopped while the POST was on its way
        elif stopped:
            await self._stop_some(job, stopped)

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
                made = await batch.create_namespaced_job(
                    ns,
                    body,  # type: ignore[arg-type]  # the client takes the JSON as is
                    _request_timeout=REQUEST_SECONDS,
                )
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

    def capacity_hint(self, group: JobGroup) -> str:
        asked = ", ".join(f"{k}={v}" for k, v in manifests.quantities(self.resources(group)).items())
        pod = self._pods.get(group.tasks[0])
        ns = pod.job.namespace if pod else self.settings.namespace
        hint = f"nodes with room for {asked} in namespace {ns}"
        why = pod.job.unschedulable if pod else None
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
        for (job_ns, name), job in list(self._jobs.items()):
            if job_ns != ns:
                continue
            if pods:
                for pod in job.pods:
                    if pod.last is not None and pod.last["metadata"]["name"] not in listed:
                        handle("DELETED", pod.last)
            elif name not in listed and job.created:
                handle("DELETED", {"metadata": {"name": name, "namespace": ns}, "status": {}})

    def _job_of(self, obj: dict[str, Any]) -> JobState | None:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        return self._jobs.get((meta.get("namespace", ""), labels.get(JOB_LABEL, "")))

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        job = self._job_of(obj)
        if job is None:
            return
        meta, status = obj["metadata"], obj.get("status") or {}
        where = (meta.get("annotations") or {}).get(INDEX_KEY) or meta["labels"].get(INDEX_KEY) or "0"
        index = int(where)
        if not 0 <= index < len(job.pods):
            return
        pod = job.pods[index]
        task = pod.task
        name = meta["name"]
        if task.exit is not None:
            if pod.abandoned and kind != "DELETED" and not meta.get("deletionTimestamp"):
                self._spawn(self._delete_pod, job.namespace, name)  # stopped before it ran
            return
        if pod.pod not in (None, name) or pod.ending:
            return  # the index's first pod decides (backoffLimit[PerIndex] 0: no second)
        pod.pod = name
        pod.last = obj
        phase = status.get("phase") or "Pending"
        if kind == "DELETED" or phase in ("Succeeded", "Failed"):
            pod.ending = True
            self._spawn(self._end, pod, obj)
            return
        self.set_state(task, phase)
        if phase == "Pending":
            self._pending_pod(pod, obj)
        else:
            job.ran = True  # its image was pulled: a sibling's pull failing is local
            pod.pulling = None
        if phase == "Running" and pod.log is None:
            pod.log = LogFollow(name)
            assert self._log_api is not None
            self._spawn(follow_log, self._log_api, job.namespace, task, pod.log)

    def _pending_pod(self, pod: PodState, obj: dict[str, Any]) -> None:
        job, status = pod.job, obj.get("status") or {}
        pod.pulling = None
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                job.unschedulable = cond.get("message") or cond.get("reason")
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING and not job.doomed:
                why = (
                    f"pod {obj['metadata']['name']} cannot start: {waiting['reason']}: "
                    f"{waiting.get('message') or ''} (image {cs.get('image')})"
                ).rstrip()
                self._doom_soon(job, why)
            elif waiting.get("reason") in PULL_WAITING:
                # Often transient (a registry's hiccup or rate limit): waited for, boundedly.
                said = f"{waiting['reason']}: {waiting.get('message') or ''}"
                if waiting["reason"] == "ErrImagePull":  # the registry's own words: kept
                    pod.pull_error = said
                else:
                    said = pod.pull_error or said
                pod.pulling = f"{said} (image {cs.get('image')})"
                if not pod.pull_deadline:
                    pod.pull_deadline = True
                    self._spawn(self._pull_deadline, pod, obj["metadata"]["name"])

    async def _pull_deadline(self, pod: PodState, name: str) -> None:
        """A pod still failing to pull its image after pull_seconds fails: its whole group when no
        pod of the group ever got its image (the image is likely wrong), else only its task (its
        pod deleted: its index fails alone, and @retry may run it again)."""
        await anyio.sleep(self.pull_seconds)
        task, job = pod.task, pod.job
        if task.exit is not None or not pod.pulling or pod.pod != name:
            return
        why = (
            f"pod {name} could not pull its image for {self.pull_seconds:.0f} s "
            f"(AFLOW_KUBERNETES_IMAGE_PULL_SECONDS): {pod.pulling}; is the image name right, and "
            "can the nodes reach its registry (and its pull secret)?"
        )
        if not job.ran and not job.doomed:
            job.doomed = True
            await self._doom(job, why)
            return
        pod.abandoned = True
        await task.logs.line("stderr", f"[aflow] {why}")
        task.finish(TaskExit(1, why))
        await self._delete_pod(job.namespace, name)
        self._forget(job)

    def _events_listed(self, items: list[dict[str, Any]]) -> None:
        for obj in items:
            self._on_event("ADDED", obj)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        """A FailedCreate event of one of this run's Jobs. While none of its pods exists: a refusal
        waiting cannot help fails the Job's tasks now, another (a full quota) after
        AFLOW_KUBERNETES_CREATE_SECONDS; once some of its pods run, the rest wait for room."""
        involved = obj.get("involvedObject") or {}
        ns = involved.get("namespace") or obj["metadata"].get("namespace", "")
        job = self._jobs.get((ns, involved.get("name", "")))
        if kind == "DELETED" or job is None or job.end is not None or job.doomed:
            return
        message = str(obj.get("message") or obj.get("note") or "")
        permanent, hint = create_refusal(message)
        job.create_error = f"{message} ({hint})" if hint else message
        if job.has_pods:
            self._tell_once(job, f"[aflow] {job.create_error}")
        elif permanent:
            why = f"Kubernetes refused to create the pods of Job {job.name}: {job.create_error}"
            self._doom_soon(job, why)
        elif not job.create_deadline:
            job.create_deadline = True
            self._spawn(self._create_deadline, job)

    def _tell_once(self, job: JobState, line: str) -> None:
        """Why pods wait to be created, said once per Job (not once per refusal)."""
        if not job.told_create:
            job.told_create = True
            self._spawn(self._tell_waiting, job, line)

    async def _tell_waiting(self, job: JobState, line: str) -> None:
        waiting = [p.task for p in job.pods if p.task.exit is None and p.pod is None]
        if waiting:
            await waiting[0].logs.line("stderr", line)

    async def _create_deadline(self, job: JobState) -> None:
        """A Job none of whose pods could be created for create_seconds fails its tasks."""
        self._tell_once(job, f"[aflow] waiting: {job.create_error}")
        with anyio.move_on_after(self.create_seconds):
            await job.ended.wait()  # the Job ended meanwhile: nothing to report
        if job.has_pods or job.end is not None or job.doomed:
            return
        job.doomed = True
        await self._doom(
            job,
            f"Kubernetes could not create any pod of Job {job.name} for "
            f"{self.create_seconds:.0f} s (AFLOW_KUBERNETES_CREATE_SECONDS): {job.create_error}",
        )

    def _on_job(self, kind: str, obj: dict[str, Any]) -> None:
        job = self._job_of(obj) or self._jobs.get(
            (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        )
        if job is None:
            return
        job.created = True
        if job.end is not None:
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
        job.finish(why)
        status = obj.get("status") or {}
        done = indexes(status.get("completedIndexes")), indexes(status.get("failedIndexes"))
        self._spawn(self._settle, job, why, *done)

    async def _settle(
        self, job: JobState, why: str | None, completed: set[int], failed: set[int]
    ) -> None:
        """The Job has ended: finish the tasks whose pods were not seen (the controller makes no
        more pods for a failed Job; or the pod watch lags) by what the Job's status says of their
        index; tasks with a pod are finished from it. A Job that failed by index (FailedIndexes)
        ran every index: its Failed condition is no failure of the indexes that completed."""
        await anyio.sleep(SETTLE_SECONDS)  # what the pod watch lags the Job watch by, at most
        for pod in job.pods:
            task, index = pod.task, pod.index
            if task.exit is None and pod.pod is None:
                if why is None or index in completed:
                    task.finish(TaskExit(0))  # the Job says it succeeded; the record tells the rest
                elif index in failed:
                    task.finish(TaskExit(1, f"{why} (index {index} failed)"))
                else:
                    task.finish(TaskExit(1, f"{why} (index {index} never ran)"))
        self._forget(job)

    # -- a pod's end and its log --------------------------------------------------------------------

    async def _end(self, pod: PodState, obj: dict[str, Any]) -> None:
        """Drain the pod's log, then finish its task with the container's exit."""
        job, task, follow = pod.job, pod.task, pod.log
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
                    await read_log(self._api, job.namespace, task, obj["metadata"]["name"], sent)
        exit = exit_of(obj)
        if exit.returncode and obj["metadata"].get("deletionTimestamp"):
            # Killed by a deletion: when its Job failed (another index did), say that, not "143".
            with anyio.move_on_after(SETTLE_SECONDS):
                await job.ended.wait()
            if job.failed:
                exit = TaskExit(exit.returncode, f"{exit.reason}; {job.failed}")
        pod.last = None
        task.finish(exit)
        self._forget(job)

    # -- stopping ------------------------------------------------------------------------------------

    async def _terminate(self, tasks: list[RemoteTask]) -> None:
        """Stop these tasks. A group all of whose unfinished tasks stop loses its Job (and, by
        propagation, its pods); when only some indexes of an Indexed Job stop (a @timeout),
        only their pods are deleted, and an index whose pod is not made yet is deleted when it
        appears. With backoffLimitPerIndex 0 a deleted pod fails its own index only: the other
        indexes run on (the Job ends Failed, FailedIndexes, which fails none of them). NB on a
        pre-1.29 cluster (backoffLimit 0) it fails the whole Job: the other tasks fail as platform
        failures (which @retry retries), naming the Job's failure."""
        jobs: dict[JobState, list[PodState]] = {}
        for task in tasks:
            pod = self._pods.get(task)
            if pod is None:  # being submitted: _submit sees it finished and stops it
                task.finish(TaskExit(143, "stopped by aflow"))
                continue
            jobs.setdefault(pod.job, []).append(pod)
        async with anyio.create_task_group() as tg:
            for job, stopping in jobs.items():
                unfinished = [p for p in job.pods if p.task.exit is None]
                if all(p in stopping for p in unfinished):
                    job.deleted = True
                    tg.start_soon(self._delete_job, job.namespace, job.name)
                else:
                    tg.start_soon(self._stop_some, job, stopping)
                for pod in stopping:
                    if pod.log is not None:
                        pod.log.scope.cancel()
                    pod.task.finish(TaskExit(143, "stopped by aflow"))
        for job in jobs:
            self._forget(job)

    async def _stop_some(self, job: JobState, stopping: list[PodState]) -> None:
        for pod in stopping:
            pod.abandoned = True
        async with anyio.create_task_group() as tg:
            for pod in stopping:
                if pod.pod is not None:
                    tg.start_soon(self._delete_pod, job.namespace, pod.pod)

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

    async def _delete(self, what: str, call: Callable[[], Awaitable[object]]) -> None:
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

    def _doom_soon(self, job: JobState, why: str) -> None:
        job.doomed = True
        self._spawn(self._doom, job, why)

    async def _doom(self, job: JobState, why: str) -> None:
        """No pod of this Job can start (its image or config is wrong): stop the Job and fail its
        tasks with the reason rather than wait for capacity that will not help."""
        with contextlib.suppress(Exception):
            await self._delete_job(job.namespace, job.name)
        for pod in job.pods:
            if pod.task.exit is None:
                await pod.task.logs.line("stderr", f"[aflow] {why}")
                pod.task.finish(TaskExit(1, why))
        self._forget(job)

    # -- helpers -------------------------------------------------------------------------------------

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        assert self._work is not None
        self._work.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
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
        for job in list(self._jobs.values()):
            for pod in job.pods:
                if pod.task.exit is None:
                    await pod.task.logs.line("stderr", f"[aflow] {why}")
                    pod.task.finish(TaskExit(1, why))
            self._forget(job)

    def _forget(self, job: JobState) -> None:
        """Once every task of a Job has finished: drop it here and in the base class (a Job with
        stopped indexes stays known, so their late pods are deleted on sight)."""
        if all(p.task.exit is not None for p in job.pods):
            self.retire(job.group)
            if not job.stopped_some:
                self._drop(job)

    def _drop(self, job: JobState) -> None:
        if self._jobs.get((job.namespace, job.name)) is job:
            del self._jobs[(job.namespace, job.name)]
        for pod in job.pods:
            if self._pods.get(pod.task) is pod:
                del self._pods[pod.task]
