"""The @kubernetes backend: runs remote steps as batch/v1 Jobs through the Kubernetes API
(kubernetes-asyncio), on top of the shared bookkeeping in backends/remote.py.

One Job per group of tasks the base class gathers: a plain Job for one task, an Indexed Job
(`completionMode: Indexed`) for a foreach's children, whose pods pick their TaskSpec by
JOB_COMPLETION_INDEX. aflow does retries itself (as new Jobs), so a Job never retries a pod: a plain
Job has `backoffLimit: 0`, an Indexed one `backoffLimitPerIndex: 0` (Kubernetes 1.29+), so a pod
lost to the platform (OOMKilled, evicted, deleted) fails its own index only and the Job runs its
other indexes on; the Job fails (FailedIndexes) once all are done. On an older API server an
Indexed Job falls back to `backoffLimit: 0`, where the first failed pod fails the whole Job.

What the cluster costs the scheduler, whatever the number of tasks: per namespace in use, ONE pod
watch and ONE Job watch, each a label selector on this run (list once for a resourceVersion, then
watch from it; a watch that ends is resumed from the last version seen, one that expired (410) is
re-listed); one log-follow stream per pod while it runs, none per waiting task; one POST per group and
one DELETE per group stopped. Nothing polls.

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
import json
import logging
import math
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import anyio.abc
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.base import TaskExit
from aflow.backends.remote import JobGroup, RemoteBackend, RemoteContext, RemoteTask, bootstrap_command
from aflow.exception import AflowException

log = logging.getLogger("aflow.kubernetes")

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
CONTAINER = "aflow"
# Labels on every Job and pod of a run. RUN_LABEL is a hash of flow and run id, so one selector finds
# exactly this run's objects whatever the names (label values are cut at 63 characters).
RUN_LABEL = "aflow.io/run"
FLOW_LABEL = "aflow.io/flow"
RUN_ID_LABEL = "aflow.io/run-id"
STEP_LABEL = "aflow.io/step"
JOB_LABEL = "aflow.io/job"

WATCH_SECONDS = 300  # a watch's server-side length; it is then resumed from its last version
LIST_PAGE = 500
REQUEST_SECONDS = 60.0
# How long the pod watch may lag the Job watch: a failed Job's indexes that no pod was seen for
# after this long never ran (the Job controller stopped making pods).
SETTLE_SECONDS = 2.0
PER_INDEX_SINCE = (1, 29)  # backoffLimitPerIndex: beta (on by default) in 1.29, GA in 1.33
DRAIN_SECONDS = 30.0  # after a pod ends, how long its log may take to arrive in full
LOG_STREAMS = 256  # connections for following logs; a pod waiting for one is read whole at its end
# Container states in which a pod will never run: waiting any longer only hides the error.
FATAL_WAITING = {
    "InvalidImageName",
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
}
_TRANSIENT = {429, 500, 502, 503, 504}
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class _Expired(Exception):
    """The watch's resourceVersion is gone (410): list again."""


@dataclass
class _LogFollow:
    """A pod's log, followed while it runs."""

    pod: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    connected: bool = False
    sent: int = 0  # lines handed to the task's log: a reconnect skips them
    ending: anyio.Event = field(default_factory=anyio.Event)  # the watch saw the pod end
    done: anyio.Event = field(default_factory=anyio.Event)


def label_value(text: str) -> str:
    """`text` as a valid label value: [A-Za-z0-9._-], at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def dns_label(text: str, size: int) -> str:
    """`text` as a lowercase DNS-1123 label fragment of at most `size` characters."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower()))[:size].strip("-") or "x"


def cpu_quantity(cpu: float) -> str:
    return str(int(cpu)) if cpu == int(cpu) else f"{math.ceil(cpu * 1000)}m"


class KubernetesBackend(RemoteBackend):
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

    # -- client ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        conf = await _configuration()
        logs_conf = await _configuration()
        logs_conf.connection_pool_maxsize = LOG_STREAMS
        self._api = client.ApiClient(conf)
        self._log_api = client.ApiClient(logs_conf)
        try:  # unreachable or refused: say so now, not as every task's failure
            with anyio.fail_after(REQUEST_SECONDS):
                info = await client.VersionApi(self._api).get_code()
        except Exception as e:
            await self._close()
            raise AflowException(
                f"@kubernetes: cannot reach the Kubernetes API at {conf.host}: {_why(e)} (set "
                "AFLOW_KUBERNETES_HOST, or KUBECONFIG / AFLOW_KUBERNETES_CONTEXT)"
            ) from None
        self._per_index = _server_version(info) >= PER_INDEX_SINCE

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
            items, _ = await self._list(batch.list_namespaced_job, ns)
            for job in items:
                if not _job_conditions(job):
                    await self._delete_job(ns, job["metadata"]["name"])

    # -- submitting ----------------------------------------------------------------------------------

    async def _submit(self, group: JobGroup) -> None:
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
        body = self._job_body(group, name, ns, await self._env(group))
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
        out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(env.items())]
        # The task record names the pod it ran in (the client's Task.job_id).
        out.append({"name": "AFLOW_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
        if group.is_array:  # the controller sets JOB_COMPLETION_INDEX too; this works on any version
            ref = {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}
            out.append({"name": "AFLOW_TASK_INDEX", "valueFrom": {"fieldRef": ref}})
        return out

    def _job_body(
        self, group: JobGroup, name: str, ns: str, env: list[dict[str, Any]]
    ) -> dict[str, Any]:
        own = group.decorators.get(self.name, {})
        step = group.step
        labels = _user_labels(step, own.get("labels"))
        labels.update({
            RUN_LABEL: self._run_key,
            FLOW_LABEL: label_value(self.ctx.flow_name),
            RUN_ID_LABEL: label_value(self.ctx.run_id),
            STEP_LABEL: label_value(step),
            JOB_LABEL: name,
        })  # fmt: skip
        annotations = {
            "aflow.io/flow-name": self.ctx.flow_name,
            "aflow.io/run-id": self.ctx.run_id,
            "aflow.io/step": step,
        }
        if not group.is_array:
            annotations["aflow.io/pathspec"] = group.tasks[0].spec.pathspec
        amount = self._quantities(group)
        container = {
            "name": CONTAINER,
            "image": self.image(group),
            "command": bootstrap_command(),
            "env": env,
            "resources": {"requests": amount, "limits": amount},
        }
        pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
        account = own.get("service_account") or os.environ.get("AFLOW_KUBERNETES_SERVICE_ACCOUNT")
        if account:
            pod["serviceAccountName"] = account
        if own.get("node_selector"):
            pod["nodeSelector"] = {str(k): str(v) for k, v in dict(own["node_selector"]).items()}
        if own.get("tolerations"):
            pod["tolerations"] = _tolerations(step, own["tolerations"])
        count = len(group.tasks)
        spec: dict[str, Any] = {
            "completions": count,
            "parallelism": min(count, self.ctx.max_workers),
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
        }
        # aflow retries, as a new Job with the next attempt number: no pod is ever retried.
        if group.is_array and self._per_index:
            # Each index fails alone (its pod OOMKilled, evicted or deleted by a @timeout); the
            # others run on. backoffLimit stays unset (unlimited): 0 would fail the whole Job again.
            spec["backoffLimitPerIndex"] = 0
        else:
            spec["backoffLimit"] = 0
        if group.is_array:
            spec["completionMode"] = "Indexed"
        meta = {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}

    def _quantities(self, group: JobGroup) -> dict[str, str]:
        """Requests (= limits) from @kubernetes / @resources: memory and disk are MiB."""
        asked = self.resources(group)
        out = {}
        if asked["cpu"]:
            out["cpu"] = cpu_quantity(asked["cpu"])
        if asked["memory"]:
            out["memory"] = f"{math.ceil(asked['memory'])}Mi"
        if asked["disk"]:
            out["ephemeral-storage"] = f"{math.ceil(asked['disk'])}Mi"
        if asked["gpu"]:
            out["nvidia.com/gpu"] = str(math.ceil(asked["gpu"]))
        return out

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
                if e.status not in _TRANSIENT or attempt >= 4:
                    raise AflowException(_refusal(e, name, ns)) from None
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt >= 4:
                    raise AflowException(f"Job {name} (namespace {ns}): {_why(e)}") from None
            await anyio.sleep(0.5 * 2**attempt * random.uniform(0.5, 1.5))

    async def _after_submit(self, group: JobGroup) -> None:
        """Tasks may all have finished while the POST was on its way, before the base class
        registered the group: once it has, retire the group if so."""
        with anyio.move_on_after(10):
            while group.job_id not in self.active and any(t.exit is None for t in group.tasks):
                await anyio.sleep(0.01)
        self._forget(group)

    def capacity_hint(self, group: JobGroup) -> str:
        asked = ", ".join(f"{k}={v}" for k, v in self._quantities(group).items())
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
        self._work.start_soon(self._watch_kind, ns, core.list_namespaced_pod, self._on_pod)
        self._work.start_soon(self._watch_kind, ns, batch.list_namespaced_job, self._on_job)

    async def _watch_kind(
        self, ns: str, lister: Callable[..., Any], handle: Callable[[str, dict[str, Any]], None]
    ) -> None:
        """List, then watch from the list's resourceVersion, for as long as the run lasts."""
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    items, version = await self._list(lister, ns)
                    self._relisted(ns, lister, items, handle)
                version = await self._stream(lister, ns, version, handle)
                failures = 0
            except _Expired:
                version = None
            except (ApiException, aiohttp.ClientError, TimeoutError, ValueError) as e:
                failures += 1
                if failures in (3, 10) or failures % 50 == 0:
                    log.warning("Kubernetes watch in namespace %s keeps failing: %s", ns, _why(e))
                await anyio.sleep(min(30.0, 0.2 * 2**failures) * random.uniform(0.5, 1.0))

    async def _list(self, lister: Callable[..., Any], ns: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        version, token = "", None
        while True:
            kwargs = {"_continue": token} if token else {}
            resp = await lister(
                ns,
                label_selector=self._selector,
                limit=LIST_PAGE,
                _preload_content=False,
                _request_timeout=REQUEST_SECONDS,
                **kwargs,
            )
            async with resp:
                page = await _read_json(resp)
            version = version or page["metadata"]["resourceVersion"]
            items += page.get("items") or []
            token = page["metadata"].get("continue")
            if not token:
                return items, version

    def _relisted(
        self,
        ns: str,
        lister: Callable[..., Any],
        items: list[dict[str, Any]],
        handle: Callable[[str, dict[str, Any]], None],
    ) -> None:
        for obj in items:
            handle("MODIFIED", obj)
        # What the bookkeeping knows and the list no longer has was deleted while no watch ran.
        listed = {obj["metadata"]["name"] for obj in items}
        pods = lister.__name__ == "list_namespaced_pod"
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

    async def _stream(
        self,
        lister: Callable[..., Any],
        ns: str,
        version: str,
        handle: Callable[[str, dict[str, Any]], None],
    ) -> str:
        """One watch from `version` until the server ends it; returns the last version seen."""
        resp = await lister(
            ns,
            label_selector=self._selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=WATCH_SECONDS + 60),
        )
        async with resp:
            if resp.status != 200:
                await _read_json(resp)  # raises, _Expired for 410
            async with contextlib.aclosing(_lines(resp)) as lines:
                async for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise _Expired
                        raise ValueError(f"watch error: {obj.get('message')}")
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        handle(kind, obj)
        return version

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
            self._pending_pod(group, obj)
        elif phase == "Running" and "log" not in task.extra:
            follow = task.extra["log"] = _LogFollow(name)
            self._spawn(self._follow_log, group, task, follow)

    def _pending_pod(self, group: JobGroup, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
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

    def _on_job(self, kind: str, obj: dict[str, Any]) -> None:
        group = self._group_of(obj) or self._groups.get(
            (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        )
        if group is None:
            return
        group.extra["created"] = True
        if "job_end" in group.extra:
            return
        conds = _job_conditions(obj)
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
        done = _indexes(status.get("completedIndexes")), _indexes(status.get("failedIndexes"))
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
        follow: _LogFollow | None = task.extra.get("log")
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
            if _container_ran(obj):
                with anyio.move_on_after(DRAIN_SECONDS), contextlib.suppress(Exception):
                    await self._read_log(group, task, obj["metadata"]["name"], sent)
        exit = _exit_of(obj)
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

    async def _follow_log(self, group: JobGroup, task: RemoteTask, follow: _LogFollow) -> None:
        """Send the pod's log lines to the task's log as they come. The stream ends when the
        container does; a broken one is reopened, skipping the lines already sent."""
        assert self._log_api is not None
        core = client.CoreV1Api(self._log_api)
        ns = group.extra["namespace"]
        errors = 0
        try:
            with follow.scope:
                while task.exit is None and errors < 10:
                    try:
                        resp = await core.read_namespaced_pod_log(
                            follow.pod,
                            ns,
                            container=CONTAINER,
                            follow=True,
                            _preload_content=False,
                            _request_timeout=aiohttp.ClientTimeout(sock_connect=30),
                        )
                        async with resp:
                            if resp.status not in (200, 400):  # 400: not started yet
                                log.info("log of pod %s: HTTP %s", follow.pod, resp.status)
                                return  # _end reads it whole, if it is still there
                            if resp.status == 200:
                                follow.connected = True
                                skip = follow.sent
                                async with contextlib.aclosing(_lines(resp)) as lines:
                                    async for line in lines:
                                        if skip:
                                            skip -= 1
                                            continue
                                        follow.sent += 1
                                        await task.logs.line("stdout", line)
                    except (ApiException, aiohttp.ClientError, TimeoutError) as e:
                        errors += 1
                        log.info("following the log of pod %s: %s", follow.pod, _why(e))
                    # Ended with the container, or broke: done once the watch saw the pod end.
                    with anyio.move_on_after(0.5):
                        await follow.ending.wait()
                    if follow.ending.is_set() and follow.connected:
                        return
        finally:
            follow.done.set()

    async def _read_log(self, group: JobGroup, task: RemoteTask, pod: str, skip: int) -> None:
        assert self._api is not None
        resp = await client.CoreV1Api(self._api).read_namespaced_pod_log(
            pod, group.extra["namespace"], container=CONTAINER, _preload_content=False,
            _request_timeout=REQUEST_SECONDS,
        )  # fmt: skip
        async with resp:
            if resp.status != 200:
                return
            async with contextlib.aclosing(_lines(resp)) as lines:
                async for line in lines:
                    if skip:
                        skip -= 1
                        continue
                    await task.logs.line("stdout", line)

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
                if e.status not in _TRANSIENT or attempt == 3:
                    log.warning("could not delete Kubernetes %s: %s", what, _why(e))
                    return
            except (aiohttp.ClientError, TimeoutError) as e:
                if attempt == 3:
                    log.warning("could not delete Kubernetes %s: %s", what, _why(e))
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
        self._work.start_soon(fn, *args)

    def _forget(self, group: JobGroup) -> None:
        """Once every task of a group has finished: drop it here and in the base class (a group
        with stopped indexes stays known, so their late pods are deleted on sight)."""
        if all(t.exit is not None for t in group.tasks):
            self.retire(group)
            key = (group.extra.get("namespace", ""), group.extra.get("name", ""))
            abandoned = any(t.extra.get("abandoned") for t in group.tasks)
            if self._groups.get(key) is group and not abandoned:
                del self._groups[key]


# -- module helpers ------------------------------------------------------------------------------------


async def _configuration() -> client.Configuration:
    host = os.environ.get("AFLOW_KUBERNETES_HOST")
    if host:
        conf = client.Configuration(host=host.rstrip("/"))
        conf.verify_ssl = os.environ.get("AFLOW_KUBERNETES_VERIFY_SSL", "1") != "0"
        return conf
    conf = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            config.load_incluster_config(client_configuration=conf)
        else:
            await config.load_kube_config(
                client_configuration=conf, context=os.environ.get("AFLOW_KUBERNETES_CONTEXT")
            )
    except Exception as e:
        raise AflowException(
            f"@kubernetes: no cluster to talk to ({_why(e)}): set AFLOW_KUBERNETES_HOST to the API's "
            "URL, or point KUBECONFIG at a kube config (AFLOW_KUBERNETES_CONTEXT picks its context)"
        ) from None
    return conf


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The response's lines, whatever their length (aiohttp's readline caps it)."""
    rest = b""
    async for chunk in resp.content.iter_any():
        rest += chunk
        if b"\n" in chunk:
            *lines, rest = rest.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
    if rest:
        yield rest.decode(errors="replace")


async def _read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    data = await resp.read()
    if resp.status == 410:
        raise _Expired
    if not 200 <= resp.status < 300:
        raise ApiException(status=resp.status, reason=_status_message(data) or resp.reason)
    return json.loads(data)


def _status_message(data: bytes | str | None) -> str:
    try:
        return str(json.loads(data or b"").get("message") or "")
    except (ValueError, AttributeError):
        return str(data or "")[:300]


def _why(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"HTTP {e.status}: {_status_message(e.body) or e.reason}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _refusal(e: ApiException, name: str, ns: str) -> str:
    what = f"Job {name} in namespace {ns}: {_why(e)}"
    if e.status == 403:
        return f"{what} (the credentials in use may not create jobs.batch in namespace {ns})"
    if e.status == 404:
        where = "@kubernetes(namespace=) or AFLOW_KUBERNETES_NAMESPACE"
        return f"{what} (does namespace {ns} exist? {where})"
    return what


def _server_version(info: Any) -> tuple[int, int]:
    """(major, minor) of a VersionInfo; minors such as "29+" (EKS, GKE) count as 29. Unreadable:
    assumed recent."""
    try:
        return int(re.sub(r"\D", "", info.major)), int(re.sub(r"\D", "", info.minor))
    except (AttributeError, TypeError, ValueError):
        return (1, 99)


def _indexes(text: str | None) -> set[int]:
    """A Job status' completedIndexes / failedIndexes ("1,3-5,7") as a set."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            out.update(range(int(first), int(last or first) + 1))
    return out


def _job_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conds = (job.get("status") or {}).get("conditions") or []
    return {
        c["type"]: c
        for c in conds
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
    }


def _terminated(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cs in (obj.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


def _container_ran(obj: dict[str, Any]) -> bool:
    for cs in (obj.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def _exit_of(obj: dict[str, Any]) -> TaskExit:
    """How a pod that is gone or done ended, in words."""
    status = obj.get("status") or {}
    name = obj["metadata"]["name"]
    if status.get("phase") == "Succeeded":
        return TaskExit(0)
    term = _terminated(obj)
    code = (term or {}).get("exitCode")
    word = (term or {}).get("reason")
    detail = (term or {}).get("message")
    if status.get("reason") == "Evicted":
        why = f"Kubernetes evicted pod {name}: {status.get('message') or 'no reason given'}"
    elif word == "OOMKilled":
        limit = _memory_limit(obj)
        why = (
            f"pod {name} was OOMKilled: the step used more memory than its limit ({limit}); "
            "ask for more with @kubernetes(memory=...) or @resources(memory=...)"
        )
    elif term is not None:
        why = f"pod {name}'s container exited with code {code}"
        if word not in (None, "Error", "Completed") or detail:
            why += f" ({': '.join(str(x) for x in (word, detail) if x)})"
        if obj["metadata"].get("deletionTimestamp"):
            why += " after the pod was deleted"
    elif status.get("phase") != "Failed" or obj["metadata"].get("deletionTimestamp"):
        when = "while its container ran" if _container_ran(obj) else "before its container ran"
        why = f"pod {name} was deleted {when}"
    else:
        said = ": ".join(str(x) for x in (status.get("reason"), status.get("message")) if x)
        why = f"pod {name} failed before its container ran: {said or 'no reason given'}"
    return TaskExit(code or (137 if word == "OOMKilled" else 1), why)


def _memory_limit(obj: dict[str, Any]) -> str:
    for c in (obj.get("spec") or {}).get("containers") or []:
        if c.get("name") == CONTAINER:
            return str(((c.get("resources") or {}).get("limits") or {}).get("memory", "none set"))
    return "none set"


def check_step(step: str, decorators: dict[str, dict[str, Any]]) -> None:
    """What can be known wrong before the run starts (see router.check_remote)."""
    own = decorators.get("kubernetes", {})
    _user_labels(step, own.get("labels"))
    if own.get("tolerations"):
        _tolerations(step, own["tolerations"])


def _user_labels(step: str, labels: Any) -> dict[str, str]:
    """@kubernetes(labels=...), checked as the API would, naming the step."""
    if not labels:
        return {}
    if not isinstance(labels, dict):
        raise AflowException(f"step '{step}': @kubernetes(labels=) must be a dict of name: value")
    out = {}
    for key, value in labels.items():
        key, value = str(key), str(value)
        prefix, _, name = key.rpartition("/")
        ok_key = (
            len(name) <= 63
            and _LABEL_NAME.fullmatch(name)
            and (not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)))
        )
        if not ok_key:
            raise AflowException(f"step '{step}': @kubernetes label name {key!r} is not valid")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise AflowException(
                f"step '{step}': @kubernetes label {key}={value!r}: a label value is at most 63 of "
                "A-Z a-z 0-9 - _ . and starts and ends with a letter or digit"
            )
        out[key] = value
    return out


def _tolerations(step: str, tolerations: Any) -> list[dict[str, Any]]:
    items = [tolerations] if isinstance(tolerations, dict) else tolerations
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise AflowException(
            f"step '{step}': @kubernetes(tolerations=) must be a list of dicts such as "
            "{'key': 'gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}"
        )
    return [dict(t) for t in items]
