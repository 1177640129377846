"""A Kubernetes API server emulator for tests: batch/v1 Jobs and core/v1 Pods over real HTTP.

No real API server can run on these machines, so the future @kubernetes backend is tested against
this one. It is an aiohttp app on 127.0.0.1 (a free port) running in its own event-loop thread in the
test process; kubernetes-asyncio talks to it with `Configuration(host=server.url)` (no TLS, no auth).

What it speaks (what a Job-based backend uses):
- `GET /version/` (and `/version`): every field `VersionInfo` requires.
- batch/v1 Jobs: create (POST), list (labelSelector, fieldSelector, limit/continue), watch, get, get
  status, delete (propagationPolicy from the query or a DeleteOptions body) and delete collection.
- core/v1 Pods: list, watch, get, delete; pod logs (`follow`, `tailLines`, `timestamps`, `limitBytes`).
- Watches are chunked streams of JSON lines `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
  "object": {...}}`, one global resourceVersion increasing with every change. Without a
  resourceVersion (or with "0") a watch starts with an ADDED event per existing object; with one it
  replays every later event; one older than `compact()` gets an ERROR event with code 410 (Expired),
  as after etcd compaction. A watch ends after its `timeoutSeconds` or the server's `watch_timeout`,
  whichever is shorter (a BOOKMARK first when the client allowed bookmarks).
- Query flags are compared case-insensitively (the client sends `watch=True`, `follow=True`).

A created Job runs as LOCAL PROCESSES: every pod runs its first container's command + args (the
image is recorded, not used) in its own process group and working folder, with the environment a
cluster sets (the container's env with `$(VAR)` expansion and `valueFrom.fieldRef`, HOSTNAME,
KUBERNETES_SERVICE_*, JOB_COMPLETION_INDEX for Indexed Jobs) on top of a minimal base (PATH with this
Python first, HOME, LANG, TMPDIR) and `pod_env` (what the image or the cluster would provide, e.g.
credentials). `inherit_env = True` gives pods the whole test-process environment instead.

Behaviour a backend must cope with, as on a real cluster:
- Pods go Pending (no status) -> Pending (scheduled, ContainerCreating) -> Running -> Succeeded |
  Failed; a Job's status omits zero counters (`succeeded` is None until one succeeds).
- Deleting a Job WITHOUT a propagationPolicy orphans its pods (the batch/v1 default): they keep
  running. Background deletes the Job at once and then its pods; Foreground deletes the pods first.
- Pod logs of a pod that has not started answer 400 "... is waiting to start"; note that the client
  does not raise for it when `_preload_content=False` (Watch.stream): the Status JSON comes as a line.
- Job and label values are validated like the real API (DNS-1123 names, label values <= 63 chars).
- Per-index backoff (Indexed Jobs, GA in 1.33): with `backoffLimitPerIndex` an index whose pods failed
  more often than that is failed alone (listed in `status.failedIndexes`, never retried) while the
  other indexes run on; once every index has succeeded or failed the Job fails (reason
  FailedIndexes), sooner when more than `maxFailedIndexes` have failed (MaxFailedIndexesExceeded,
  its active pods deleted). `backoffLimit` then defaults to 2^31-1 (a set one still counts all
  failed pods); pods carry the `batch.kubernetes.io/job-index-failure-count` annotation.

Standalone (outside the test process): `python tests/fakes/k8s_server.py` prints its URL and serves.

Hooks: `evict_next_pod`, `oom_next_pod`, `hold_pending` / `release_pending`, `compact`,
`require_tokens` / `issue_token`, `set_role` / `set_namespaces` (RBAC and namespaces, with
SelfSubjectAccessReview answered from the Role; k8s_access.py), `add_service_account`,
`label_namespace`, `set_quota`, `set_limit_range`, `fail_image_pull`; settings: `watch_timeout`,
`history_limit`, `pending_seconds`, `pod_env` (its PATH chooses the image's python3),
`pod_env_override`, `inherit_env`, `create_retry_seconds`, `validate_schema`, `image_users`,
`container_wrapper` (argv put before every container's command, as FakeBatch's); inspection:
`requests`, `calls`, `job`, `pods`, `events`, `pod_log`, `peak_running`, `alive_pids`. What it
enforces like a real cluster (strict schema, limits, admission, RBAC, expiring tokens) is listed with
sources in tests/fakes/README.md. Limits: one container per pod runs (init and sidecar containers
are ignored), restartPolicy OnFailure behaves like Never, no retry backoff delay between failed pods,
no podFailurePolicy, no PATCH/PUT, secretKeyRef/configMapKeyRef/envFrom not resolved.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import concurrent.futures
import contextlib
import copy
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fakes import k8s_access as access_rules
from fakes import k8s_admission as admission
from fakes import k8s_schema

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-aflow-fake",
    "gitCommit": "6911225c3f747e1cd9d109c305436d08b668f086",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}

NODE_NAME = "aflow-fake-node"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
MAX_INT32 = 2**31 - 1
MAX_FAILED_INDEXES = 100_000  # the API's limit on maxFailedIndexes
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_KEY_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_nano() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _suffix() -> str:
    return "".join(random.choices(_SUFFIX_CHARS, k=5))


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("true", "1")


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _ranges(indexes: set[int]) -> str:
    out: list[str] = []
    for i in sorted(indexes):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


# -- selectors -----------------------------------------------------------------------------------


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """Equality- and set-based selectors: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a."""
    reqs: list[tuple[str, str, Any]] = []
    for part in _split_top(text or ""):
        m = re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\((.*)\)", part)
        if m:
            reqs.append((m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}))
        elif "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", None))
        else:
            reqs.append((part, "exists", None))

    def match(labels: dict[str, str]) -> bool:
        for key, op, val in reqs:
            have = labels.get(key)
            if op == "=" and have != val:
                return False
            if op == "!=" and have == val:
                return False
            if op == "in" and have not in val:
                return False
            if op == "notin" and have in val:
                return False
            if op == "exists" and key not in labels:
                return False
            if op == "!exists" and key in labels:
                return False
        return True

    return match


def parse_field_selector(text: str) -> Callable[[dict], bool]:
    """metadata.name=x, status.phase!=Running, ... (any dotted path of the object)."""
    reqs = []
    for part in _split_top(text or ""):
        neg = "!=" in part
        k, v = re.split(r"!=|==|=", part, maxsplit=1)
        reqs.append((k.strip().split("."), v.strip(), neg))

    def get(obj: Any, path: list[str]) -> str:
        for p in path:
            obj = obj.get(p) if isinstance(obj, dict) else None
        return "" if obj is None else str(obj)

    return lambda obj: all((get(obj, path) == val) != neg for path, val, neg in reqs)


# -- state ---------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    time: float
    status: int | None = None  # set when the server refused it before handling (401)

    @property
    def watch(self) -> bool:
        return _flag(self.query, "watch")


@dataclass
class _Fate:
    kind: str  # "evict" | "oom"
    after: float


@dataclass
class _Event:
    rv: int
    kind: str  # "jobs" | "pods"
    type: str
    obj: dict


@dataclass(eq=False)
class _Pod:
    obj: dict
    job: _Job | None
    index: int | None
    log: list[tuple[str, bytes]] = field(default_factory=list)
    log_done: bool = False
    started: bool = False
    proc: asyncio.subprocess.Process | None = None
    deleting: bool = False
    removed: bool = False
    deleted: asyncio.Event = field(default_factory=asyncio.Event)
    log_event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.obj["metadata"]["namespace"]

    @property
    def terminal(self) -> bool:
        return self.obj["status"].get("phase") in ("Succeeded", "Failed")

    def notify_log(self) -> None:
        self.log_event.set()
        self.log_event = asyncio.Event()


@dataclass(eq=False)
class _Job:
    obj: dict
    pods: list[_Pod] = field(default_factory=list)
    active: set[_Pod] = field(default_factory=set)
    succeeded: int = 0
    failed: int = 0
    completed_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    index_failures: dict[int, int] = field(default_factory=dict)  # failed pods per index
    running: int = 0
    peak_running: int = 0
    deleting: bool = False
    task: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.obj["metadata"]["namespace"]


@dataclass(eq=False)
class _Stored:
    """An object with no behaviour of its own (an Event)."""

    obj: dict


def _namespace_not_found(name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"}
    )


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def response(self) -> web.Response:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        return web.json_response(body, status=self.code)


def _not_found(kind: str, name: str, group: str = "") -> ApiError:
    what = f"{kind}.{group}" if group else kind
    return ApiError(404, "NotFound", f'{what} "{name}" not found', {"name": name, "kind": kind})


def _invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {message}', {"name": name, "kind": kind}
    )


# -- the server ----------------------------------------------------------------------------------


class FakeK8s:
    """The emulator. `start()` / `stop()`; everything else may be called from the test thread."""

    def __init__(self, workdir: str | Path | None = None):
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fake-k8s-"))
        self.requests: list[RecordedRequest] = []
        # Settings (read by the server thread whenever they apply).
        self.watch_timeout: float | None = None  # server-side end of every watch, in seconds
        self.pending_seconds: float = 0.0  # time a scheduled pod spends in ContainerCreating
        self.max_grace_seconds: float = 2.0  # SIGTERM -> SIGKILL, whatever the pod asks
        self.pod_env: dict[str, str] = {}  # given to every pod (image ENV, cluster-provided credentials)
        self.inherit_env = False  # True: pods get the test process's whole environment
        # Set over the container's own env (as a mutating webhook would): e.g. a benchmark's
        # datastore endpoint for the pods only.
        self.pod_env_override: dict[str, str] = {}
        self.history_limit: int | None = None  # keep at most this many events (older: 410 Expired)
        # Bearer tokens the server accepts (token -> expiry on the server loop's clock, None: never);
        # None: no authentication (a `kubectl proxy`). See require_tokens / issue_token.
        self.tokens: dict[str, float | None] | None = None
        self.validate_schema = True  # strict OpenAPI validation of what is created
        self.create_retry_seconds = 1.0  # the Job controller's wait before creating a refused pod again
        self.rules: list[dict[str, Any]] | None = None  # a Role's rules (None: everything allowed)
        self.namespaces: set[str] | None = None  # the namespaces that exist (None: any)
        self._accounts: dict[str, set[str]] = {}  # namespace -> service accounts besides "default"
        self._ns_labels: dict[str, dict[str, str]] = {}
        self._quotas: dict[str, tuple[str, dict[str, str]]] = {}
        self._limit_ranges: dict[str, dict[str, dict[str, str]]] = {}
        self._events: dict[tuple[str, str], _Stored] = {}
        self._pull_failures: list[list[Any]] = []  # [image, seconds or None, pods left]
        self.image_users: dict[str, int] = {}  # image -> the uid it runs as (default 0: root)
        # Put before every container's command (e.g. `unshare`/`setpriv`: PID 1, another user, a
        # read-only root), as FakeBatch's; `pod_env["PATH"]` chooses the image's python3.
        self.container_wrapper: list[str] = []
        self.url = ""
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._rv = 1  # "0" means "any version" to a watch: a list never answers it
        self._compacted_rv = 0
        self._history: list[_Event] = []
        self._history_rvs: list[int] = []
        self._changed: asyncio.Event | None = None
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._fates: dict[str | None, deque[_Fate]] = {}
        self._held: set[str] = set()
        self._release: asyncio.Event | None = None
        self._closing = False
        self._tasks: set[asyncio.Task] = set()
        self._all_procs: list[asyncio.subprocess.Process] = []
        self._pod_ip = 0
        self._peaks: dict[tuple[str, str], int] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeK8s:
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:
                ready.set_exception(e)
                loop.close()
                return
            ready.set_result(None)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-k8s", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    async def _start(self) -> None:
        self._changed = asyncio.Event()
        self._release = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        r = app.router
        r.add_post("/_fake/token", self._token)
        r.add_get("/version", self._version)
        r.add_get("/version/", self._version)
        r.add_post(access_rules.SSAR_PATH, self._access_review)
        r.add_get("/api/v1/namespaces/{name}", self._get_namespace)
        r.add_get("/apis/batch/v1/jobs", self._list_jobs)
        r.add_get("/apis/batch/v1/namespaces/{ns}/jobs", self._list_jobs)
        r.add_post("/apis/batch/v1/namespaces/{ns}/jobs", self._create_job)
        r.add_delete("/apis/batch/v1/namespaces/{ns}/jobs", self._delete_jobs)
        r.add_get("/apis/batch/v1/namespaces/{ns}/jobs/{name}", self._get_job)
        r.add_get("/apis/batch/v1/namespaces/{ns}/jobs/{name}/status", self._get_job)
        r.add_delete("/apis/batch/v1/namespaces/{ns}/jobs/{name}", self._delete_job)
        r.add_get("/api/v1/events", self._list_events)
        r.add_get("/api/v1/namespaces/{ns}/events", self._list_events)
        r.add_get("/api/v1/pods", self._list_pods)
        r.add_get("/api/v1/namespaces/{ns}/pods", self._list_pods)
        r.add_delete("/api/v1/namespaces/{ns}/pods", self._delete_pods)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get_pod)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/status", self._get_pod)
        r.add_delete("/api/v1/namespaces/{ns}/pods/{name}", self._delete_pod_handler)
        r.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._pod_log)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None
        if self._own_workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _shutdown(self) -> None:
        self._closing = True
        self._wake_watchers()
        for pod in list(self._pods.values()):
            pod.notify_log()
        for proc in self._all_procs:
            if proc.returncode is None:
                self._killpg(proc, signal.SIGKILL)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop (state is only touched there) and return its result."""
        assert self._loop is not None, "server not started"

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def client_configuration(self) -> Any:
        """A kubernetes_asyncio Configuration pointing at this server."""
        from kubernetes_asyncio.client import Configuration

        conf = Configuration(host=self.url)
        conf.verify_ssl = False
        return conf

    # -- hooks (test thread) --------------------------------------------------------------------

    def evict_next_pod(self, job_name: str | None = None, after: float = 0.2) -> None:
        """The next pod started (of `job_name`, or of any Job) is evicted `after` seconds after it
        starts (or when its process ends, if sooner): phase Failed, status.reason "Evicted", a
        DisruptionTarget condition, its container terminated with exit code 137."""
        self._call(lambda: self._fates.setdefault(job_name, deque()).append(_Fate("evict", after)))

    def oom_next_pod(self, job_name: str | None = None, after: float = 0.0) -> None:
        """The next pod started is OOM-killed `after` seconds after it starts (or when its process ends):
        SIGKILL, exit code 137, container reason "OOMKilled"."""
        self._call(lambda: self._fates.setdefault(job_name, deque()).append(_Fate("oom", after)))

    def hold_pending(self, job_name: str | None = None) -> None:
        """Pods (of `job_name`, or all) stay Pending, Unschedulable, until released."""
        self._call(lambda: self._held.add(job_name or "*"))

    def release_pending(self, job_name: str | None = None) -> None:
        """Undo hold_pending (None: release everything held)."""

        def release() -> None:
            if job_name is None:
                self._held.clear()
            else:
                self._held.discard(job_name)
            assert self._release is not None
            self._release.set()
            self._release = asyncio.Event()

        self._call(release)

    def require_tokens(self) -> None:
        """From now on every request needs `Authorization: Bearer <token>` with a token from
        issue_token (or POST /_fake/token?ttl=SECONDS, what a test's exec plugin calls) that has not
        expired; otherwise 401 Unauthorized, as an API server answers an expired EKS/GKE token."""
        self._call(lambda: setattr(self, "tokens", self.tokens or {}))

    def issue_token(self, ttl: float | None) -> str:
        """A new bearer token valid for `ttl` seconds (None: until the server stops)."""
        return self._call(lambda: self._issue(ttl))

    def _issue(self, ttl: float | None) -> str:
        token = "k8s-aws-v1." + uuid.uuid4().hex
        assert self._loop is not None
        if self.tokens is None:
            self.tokens = {}
        self.tokens[token] = None if ttl is None else self._loop.time() + ttl
        return token

    def _authorized(self, request: web.Request) -> bool:
        if self.tokens is None or request.path == "/_fake/token":
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return False
        expiry = self.tokens[token]
        return expiry is None or asyncio.get_running_loop().time() < expiry

    async def _token(self, request: web.Request) -> web.Response:
        ttl = request.query.get("ttl")
        token = self._issue(float(ttl) if ttl else None)
        expiry = None
        if ttl:
            expiry = datetime.fromtimestamp(datetime.now(UTC).timestamp() + float(ttl), UTC)
        stamp = expiry.strftime("%Y-%m-%dT%H:%M:%SZ") if expiry else None
        return web.json_response({"token": token, "expirationTimestamp": stamp})

    def set_role(self, rules: list[dict[str, Any]] | None) -> None:
        """Requests are allowed only as these Role rules (bound in every namespace) allow, as for a
        user with only a RoleBinding; others get 403 Forbidden. None: everything allowed."""
        self._call(lambda: setattr(self, "rules", copy.deepcopy(rules)))

    def set_namespaces(self, names: set[str] | None) -> None:
        """Only these namespaces exist: creating in another is 404 NotFound. None: any exists."""
        self._call(lambda: setattr(self, "namespaces", set(names) if names is not None else None))

    def add_service_account(self, namespace: str, name: str) -> None:
        """Every namespace has "default"; a pod naming any other account not added is refused."""
        self._call(lambda: self._accounts.setdefault(namespace, set()).add(name))

    def label_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        """E.g. {"pod-security.kubernetes.io/enforce": "restricted"}: Pod Security admission."""
        self._call(lambda: self._ns_labels.setdefault(namespace, {}).update(labels))

    def set_quota(self, namespace: str, hard: dict[str, str], name: str = "compute-quota") -> None:
        """A ResourceQuota: pods over it are refused (FailedCreate) until others end."""
        self._call(lambda: self._quotas.__setitem__(namespace, (name, dict(hard))))

    def set_limit_range(
        self, namespace: str, max: dict[str, str] | None = None, min: dict[str, str] | None = None
    ) -> None:
        """A LimitRange of type Container: a limit over `max` or a request under `min` is refused."""
        self._call(
            lambda: self._limit_ranges.__setitem__(namespace, {"max": max or {}, "min": min or {}})
        )

    def fail_image_pull(self, image: str, seconds: float | None = None, pods: int | None = None) -> None:
        """The next `pods` pods (None: all) of `image` cannot pull it: ErrImagePull then
        ImagePullBackOff, for `seconds` (then the pull works: a registry hiccup) or for ever (None:
        the image does not exist)."""
        self._call(lambda: self._pull_failures.append([image, seconds, pods]))

    def events(self, namespace: str = "default") -> list[dict]:
        return self._call(
            lambda: [copy.deepcopy(e.obj) for (ns, _), e in self._events.items() if ns == namespace]
        )

    def compact(self) -> int:
        """Forget the event history (like etcd compaction): a watch from an older resourceVersion
        gets an ERROR event with code 410. Returns the current resourceVersion."""

        def run() -> int:
            self._compacted_rv = self._rv
            self._history.clear()
            self._history_rvs.clear()
            return self._rv

        return self._call(run)

    # -- inspection (test thread) ---------------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None, watch: bool | None = None):
        """Recorded requests filtered by method, a regex searched in the path, and being a watch."""
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method.upper())
            and (path is None or re.search(path, r.path))
            and (watch is None or r.watch == watch)
        ]

    def job(self, name: str, namespace: str = "default") -> dict | None:
        return self._call(
            lambda: copy.deepcopy(j.obj) if (j := self._jobs.get((namespace, name))) else None
        )

    def pods(self, job_name: str | None = None, namespace: str = "default") -> list[dict]:
        """Pods that exist now (not deleted), oldest first."""

        def run() -> list[dict]:
            out = [
                p.obj
                for p in self._pods.values()
                if p.namespace == namespace
                and (job_name is None or p.obj["metadata"]["labels"].get("job-name") == job_name)
            ]
            return copy.deepcopy(out)

        return self._call(run)

    def pod_log(self, name: str, namespace: str = "default") -> str:
        def run() -> str:
            pod = self._pods.get((namespace, name))
            return b"".join(line for _, line in pod.log).decode(errors="replace") if pod else ""

        return self._call(run)

    def peak_running(self, job_name: str, namespace: str = "default") -> int:
        """Most processes of this Job that ran at the same time (kept after the Job is deleted)."""
        return self._call(lambda: self._peaks.get((namespace, job_name), 0))

    def alive_pids(self) -> list[int]:
        """Pids of pod processes still running (leaders of their process groups)."""
        return self._call(lambda: [p.pid for p in self._all_procs if p.returncode is None])

    # -- events ---------------------------------------------------------------------------------

    def _emit(self, kind: str, type_: str, obj: dict) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._history.append(_Event(self._rv, kind, type_, copy.deepcopy(obj)))
        self._history_rvs.append(self._rv)
        if self.history_limit is not None and len(self._history) > 2 * self.history_limit:
            drop = len(self._history) - self.history_limit
            self._compacted_rv = self._history_rvs[drop - 1]
            del self._history[:drop], self._history_rvs[:drop]
        self._wake_watchers()

    def _wake_watchers(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    # -- HTTP plumbing --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        raw = await request.read() if request.can_read_body else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        loop = asyncio.get_running_loop()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), body, loop.time())
        )
        if not self._authorized(request):
            self.requests[-1].status = 401
            return ApiError(401, "Unauthorized", "Unauthorized").response()
        try:
            self._check_access(request)
            return await handler(request)
        except ApiError as e:
            return e.response()
        except web.HTTPException as e:
            if e.status == 404:
                return ApiError(
                    404, "NotFound", "the server could not find the requested resource"
                ).response()
            if e.status == 405:
                return ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method"
                ).response()
            raise

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    def _check_access(self, request: web.Request) -> None:
        """The Role set by set_role (403 as the API server words it); creating in a namespace that
        does not exist (set_namespaces) is 404, as a real server answers (a list there is empty)."""
        access = access_rules.access_of(request.method, request.path, dict(request.query))
        if access is None or request.path == access_rules.SSAR_PATH:
            return
        if self.rules is not None and not (
            access.namespace and access_rules.allowed(self.rules, access)
        ):
            self.requests[-1].status = 403
            raise ApiError(403, "Forbidden", access_rules.forbidden_message(access))
        missing = self.namespaces is not None and access.namespace not in self.namespaces
        if missing and access.namespace and access.verb == "create":
            self.requests[-1].status = 404
            raise _namespace_not_found(access.namespace)

    async def _access_review(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ApiError(
                400, "BadRequest", "the body of the request was not a SelfSubjectAccessReview"
            )
        return web.json_response(access_rules.review(self.rules, body), status=201)

    async def _get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.namespaces is not None and name not in self.namespaces:
            raise _namespace_not_found(name)
        meta = {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "labels": {}}
        meta["labels"].update(self._ns_labels.get(name, {}))
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
        return web.json_response({**body, "status": {"phase": "Active"}})

    @staticmethod
    async def _json(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {e}") from None

    def _selectors(self, request: web.Request) -> tuple[Callable, Callable]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector", ""))
            fields = parse_field_selector(request.query.get("fieldSelector", ""))
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"unable to parse selector: {e}") from None
        return labels, fields

    def _list(self, request: web.Request, kind: str, objs: list[dict]) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        ns = request.match_info.get("ns")
        items = sorted(
            (
                o
                for o in objs
                if (ns is None or o["metadata"]["namespace"] == ns)
                and labels(o["metadata"].get("labels") or {})
                and fields(o)
            ),
            key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]),
        )
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        cont = request.query.get("continue")
        if cont:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(cont)))
            except ValueError:
                raise ApiError(400, "BadRequest", "invalid continue token") from None
            items = [o for o in items if (o["metadata"]["namespace"], o["metadata"]["name"]) > after]
        limit = int(request.query.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = json.dumps([last["namespace"], last["name"]]).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out = []
        for o in items:
            o = copy.deepcopy(o)
            o.pop("kind", None)
            o.pop("apiVersion", None)
            out.append(o)
        list_kind, api = {
            "jobs": ("JobList", "batch/v1"), "pods": ("PodList", "v1"), "events": ("EventList", "v1")
        }[kind]  # fmt: skip
        return web.json_response({"kind": list_kind, "apiVersion": api, "metadata": meta, "items": out})

    # -- watch ----------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, kind: str) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        ns = request.match_info.get("ns")
        q = request.query
        rv_text = q.get("resourceVersion", "")
        timeouts = [
            float(t) for t in (q.get("timeoutSeconds"), self.watch_timeout) if t not in (None, "")
        ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeouts) if timeouts else None
        bookmarks = _flag(q, "allowWatchBookmarks")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def matches(obj: dict) -> bool:
            meta = obj["metadata"]
            return (
                (ns is None or meta["namespace"] == ns)
                and labels(meta.get("labels") or {})
                and fields(obj)
            )

        async def send(type_: str, obj: dict) -> None:
            await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")

        try:
            if rv_text in ("", "0"):
                pos = self._rv
                store: dict[Any, Any] = {"jobs": self._jobs, "pods": self._pods, "events": self._events}[
                    kind
                ]
                current = sorted(
                    (copy.deepcopy(x.obj) for x in store.values()),
                    key=lambda o: int(o["metadata"]["resourceVersion"]),
                )
                for obj in current:
                    if matches(obj):
                        await send("ADDED", obj)
            else:
                try:
                    pos = int(rv_text)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_text!r}") from None
                if pos < self._compacted_rv:
                    status = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f"too old resource version: {pos} ({self._compacted_rv})",
                        "reason": "Expired",
                        "code": 410,
                    }
                    await send("ERROR", status)
                    return resp
            while not self._closing:
                assert self._changed is not None
                changed = self._changed
                start = bisect.bisect_right(self._history_rvs, pos)
                for ev in self._history[start:]:
                    pos = ev.rv
                    if ev.kind == kind and matches(ev.obj):
                        await send(ev.type, ev.obj)
                if deadline is not None and loop.time() >= deadline:
                    if bookmarks:
                        api = "batch/v1" if kind == "jobs" else "v1"
                        mark = {
                            "kind": {"jobs": "Job", "pods": "Pod"}.get(kind, "Event"),
                            "apiVersion": api,
                        }
                        await send("BOOKMARK", {**mark, "metadata": {"resourceVersion": str(pos)}})
                    break
                wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
                try:
                    await asyncio.wait_for(changed.wait(), max(wait, 0.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        return resp
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away mid-stream
        return resp

    # -- jobs -----------------------------------------------------------------------------------

    async def _list_events(self, request: web.Request) -> web.StreamResponse:
        if _flag(request.query, "watch"):
            return await self._watch(request, "events")
        return self._list(request, "events", [e.obj for e in self._events.values()])

    def _failed_create(self, job: _Job, message: str) -> None:
        """The Job controller's Warning event for a pod it could not create. Later ones count
        up on the same event, with the latest message (the event correlator aggregates similar
        events: same object, reason and type; each message names a new pod)."""
        now = _now()
        for stored in self._events.values():
            ev = stored.obj
            if ev["involvedObject"]["uid"] == job.obj["metadata"]["uid"]:
                ev["count"] += 1
                ev["lastTimestamp"] = now
                ev["message"] = message
                self._emit("events", "MODIFIED", ev)
                return
        name = f"{job.name}.{uuid.uuid4().hex[:16]}"
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": job.namespace, "uid": str(uuid.uuid4()),
                         "creationTimestamp": now},
            "involvedObject": {"kind": "Job", "namespace": job.namespace, "name": job.name,
                               "uid": job.obj["metadata"]["uid"], "apiVersion": "batch/v1"},
            "reason": "FailedCreate",
            "message": message,
            "source": {"component": "job-controller"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": "Warning",
            "eventTime": None,
            "reportingComponent": "job-controller",
            "reportingInstance": "",
        }  # fmt: skip
        self._events[(job.namespace, name)] = _Stored(ev)
        self._emit("events", "ADDED", ev)

    def _admit(self, job: _Job, index: int | None) -> str | None:
        """Why the API server would refuse the Job's next pod, in the FailedCreate event's words."""
        ns = job.namespace
        spec = copy.deepcopy(job.obj["spec"]["template"]["spec"])
        spec.setdefault("serviceAccountName", "default")
        pod = {"spec": spec}
        name = (f"{job.name}-" if index is None else f"{job.name}-{index}-") + _suffix()
        running = [p.obj for p in self._pods.values() if p.namespace == ns and not p.terminal]
        quota_name, hard = self._quotas.get(ns, ("", {}))
        level = self._ns_labels.get(ns, {}).get("pod-security.kubernetes.io/enforce")
        why = (
            admission.service_account_refusal(ns, pod, {"default"} | self._accounts.get(ns, set()))
            or admission.pod_security_refusal(level, pod)
            or admission.limit_range_refusal(self._limit_ranges.get(ns), pod)
            or admission.quota_refusal(quota_name, hard, pod, running)
        )
        return f'Error creating: pods "{name}" is forbidden: {why}' if why else None

    async def _list_jobs(self, request: web.Request) -> web.StreamResponse:
        if _flag(request.query, "watch"):
            return await self._watch(request, "jobs")
        return self._list(request, "jobs", [j.obj for j in self._jobs.values()])

    def _find_job(self, request: web.Request) -> _Job:
        ns, name = request.match_info["ns"], request.match_info["name"]
        job = self._jobs.get((ns, name))
        if job is None:
            raise _not_found("jobs", name, "batch")
        return job

    async def _get_job(self, request: web.Request) -> web.Response:
        return web.json_response(self._find_job(request).obj)

    @staticmethod
    def _check_labels(kind: str, name: str, where: str, labels: Any) -> None:
        if labels is None:
            return
        if not isinstance(labels, dict):
            raise _invalid(kind, name, f"{where}: Invalid value: must be a map")
        for k, v in labels.items():
            key_name = k.rsplit("/", 1)[-1]
            if len(key_name) > 63 or not _LABEL_KEY_NAME_RE.fullmatch(key_name):
                raise _invalid(kind, name, f'{where}: Invalid value: "{k}": name part must be valid')
            if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE_RE.fullmatch(v):
                raise _invalid(
                    kind,
                    name,
                    f'{where}: Invalid value: "{v}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', must start and end with an "
                    "alphanumeric character, and be at most 63 characters",
                )

    @staticmethod
    def _check_per_index(name: str, spec: dict, mode: str) -> None:
        """backoffLimitPerIndex / maxFailedIndexes, validated as batch/v1 validation.go does."""

        def invalid(path: str, value: Any, why: str) -> ApiError:
            return _invalid("Job.batch", name, f"spec.{path}: Invalid value: {value}: {why}")

        for key in ("backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes"):
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise invalid(key, value, "must be greater than or equal to 0")
        per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
        if max_failed is not None and per_index is None:
            raise _invalid(
                "Job.batch",
                name,
                "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
            )
        if mode != "Indexed":
            if per_index is not None:
                raise invalid("backoffLimitPerIndex", per_index, "requires indexed completion mode")
            if max_failed is not None:
                raise invalid("maxFailedIndexes", max_failed, "requires indexed completion mode")
            return
        if max_failed is not None and max_failed > int(spec["completions"]):
            raise invalid("maxFailedIndexes", max_failed, "must be less than or equal to completions")
        if max_failed is not None and max_failed > MAX_FAILED_INDEXES:
            raise invalid(
                "maxFailedIndexes", max_failed, f"must be less than or equal to {MAX_FAILED_INDEXES}"
            )

    async def _create_job(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        body = await self._json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not a Job")
        self._validate(body, "Job", "batch/v1", len(await request.read()))
        meta = body.setdefault("metadata", {})
        if meta.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
        name = meta.get("name") or (meta.get("generateName") and meta["generateName"] + _suffix())
        if not name:
            raise _invalid(
                "Job.batch", "", "metadata.name: Required value: name or generateName is required"
            )
        if len(name) > 63 or not _NAME_RE.fullmatch(name):
            raise _invalid(
                "Job.batch",
                name,
                f'metadata.name: Invalid value: "{name}": must be a lowercase RFC 1123 label of at most '
                "63 characters",
            )
        if (ns, name) in self._jobs:
            raise ApiError(
                409,
                "AlreadyExists",
                f'jobs.batch "{name}" already exists',
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        spec = body.get("spec") or {}
        template = spec.get("template") or {}
        tspec = template.get("spec") or {}
        containers = tspec.get("containers") or []
        if not containers:
            raise _invalid("Job.batch", name, "spec.template.spec.containers: Required value")
        for c in containers:
            if not c.get("name"):
                raise _invalid(
                    "Job.batch", name, "spec.template.spec.containers[0].name: Required value"
                )
            if not c.get("image"):
                raise _invalid(
                    "Job.batch", name, "spec.template.spec.containers[0].image: Required value"
                )
        policy = tspec.get("restartPolicy", "Always")
        if policy not in ("Never", "OnFailure"):
            raise _invalid(
                "Job.batch",
                name,
                f'spec.template.spec.restartPolicy: Unsupported value: "{policy}": supported values: '
                '"OnFailure", "Never"',
            )
        mode = spec.get("completionMode") or "NonIndexed"
        if mode not in ("Indexed", "NonIndexed"):
            raise _invalid("Job.batch", name, f'spec.completionMode: Unsupported value: "{mode}"')
        if mode == "Indexed" and spec.get("completions") is None:
            raise _invalid(
                "Job.batch", name, "spec.completions: Required value: when completion mode is Indexed"
            )
        self._check_per_index(name, spec, mode)
        self._check_labels("Job.batch", name, "metadata.labels", meta.get("labels"))
        tmeta = template.setdefault("metadata", {})
        self._check_labels("Job.batch", name, "spec.template.metadata.labels", tmeta.get("labels"))

        uid = str(uuid.uuid4())
        own = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **own}
        tspec["restartPolicy"] = policy
        template["spec"] = tspec
        spec["template"] = template
        spec.setdefault("parallelism", 1)
        if mode == "NonIndexed" and spec.get("completions") is None:
            spec["completions"] = 1
        if spec.get("backoffLimit") is None:  # unlimited when each index has its own limit
            spec["backoffLimit"] = 6 if spec.get("backoffLimitPerIndex") is None else MAX_INT32
        spec["completionMode"] = mode
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        meta.update(
            name=name,
            namespace=ns,
            uid=uid,
            creationTimestamp=_now(),
            generation=1,
            labels=meta.get("labels") or dict(tmeta["labels"]),
        )
        meta.pop("resourceVersion", None)
        obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec, "status": {}}
        job = _Job(obj)
        self._jobs[(ns, name)] = job
        self._emit("jobs", "ADDED", obj)
        job.task = self._spawn(self._control(job))
        return web.json_response(obj, status=201)

    def _validate(self, body: dict, kind: str, api: str, raw_size: int) -> None:
        """Strict field validation against the emulated version's OpenAPI schema, then the
        documented limits (k8s_schema): what a real API server refuses is refused here too."""
        if raw_size > k8s_schema.MAX_REQUEST_BYTES:
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        body.setdefault("apiVersion", api)
        body.setdefault("kind", kind)
        if body["apiVersion"] != api or body["kind"] != kind:
            raise ApiError(400, "BadRequest", f"the body is a {body['kind']}, not a {kind}")
        if not self.validate_schema:
            return
        version = f"{VERSION['major']}.{re.sub(r'[^0-9]', '', VERSION['minor'])}"
        errors = k8s_schema.schema_errors(body, version)
        if errors:
            raise ApiError(
                400,
                "BadRequest",
                f'{kind} in version "v1" cannot be handled as a {kind}: strict decoding error: '
                + "; ".join(errors),
            )
        limits = k8s_schema.limit_errors(body, k8s_schema.size_of(body))
        if limits:
            name = (body.get("metadata") or {}).get("name", "")
            raise _invalid(f"{kind}.batch", name, ", ".join(limits))

    async def _delete_job(self, request: web.Request) -> web.Response:
        job = self._find_job(request)
        policy, grace = self._delete_options(request, await self._json(request))
        return web.json_response(await self._start_job_deletion(job, policy, grace))

    async def _delete_jobs(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        policy, grace = self._delete_options(request, await self._json(request))
        labels, fields = self._selectors(request)
        for job in list(self._jobs.values()):
            meta = job.obj["metadata"]
            if meta["namespace"] == ns and labels(meta.get("labels") or {}) and fields(job.obj):
                await self._start_job_deletion(job, policy, grace)
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        )

    @staticmethod
    def _delete_options(request: web.Request, body: Any) -> tuple[str, float | None]:
        body = body if isinstance(body, dict) else {}
        policy = request.query.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None and (_flag(request.query, "orphanDependents") or body.get("orphanDependents")):
            policy = "Orphan"
        grace = request.query.get("gracePeriodSeconds") or body.get("gracePeriodSeconds")
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'propagationPolicy: Unsupported value: "{policy}"')
        return policy or "Orphan", None if grace in (None, "") else float(grace)

    async def _start_job_deletion(self, job: _Job, policy: str, grace: float | None) -> dict:
        meta = job.obj["metadata"]
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": meta["name"], "group": "batch", "kind": "jobs", "uid": meta["uid"]},
        }
        if job.deleting:
            return status
        job.deleting = True
        if job.task is not None:
            job.task.cancel()
        pods = [p for p in job.pods if not p.removed]
        if policy == "Orphan":
            for pod in pods:
                pod.obj["metadata"].pop("ownerReferences", None)
                self._emit("pods", "MODIFIED", pod.obj)
            self._remove_job(job)
        elif policy == "Background":
            self._remove_job(job)
            for pod in pods:
                self._spawn(self._delete_pod(pod, grace))
        else:  # Foreground
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["finalizers"] = ["foregroundDeletion"]
            self._emit("jobs", "MODIFIED", job.obj)

            async def foreground() -> None:
                await asyncio.gather(*(self._delete_pod(p, grace) for p in pods))
                meta["finalizers"] = []
                self._remove_job(job)

            self._spawn(foreground())
        return status

    def _remove_job(self, job: _Job) -> None:
        if self._jobs.get((job.namespace, job.name)) is job:
            del self._jobs[(job.namespace, job.name)]
            job.obj["metadata"].setdefault("deletionTimestamp", _now())
            self._emit("jobs", "DELETED", job.obj)

    # -- the Job controller ---------------------------------------------------------------------

    def _sync_job_status(self, job: _Job) -> None:
        if job.deleting or (job.namespace, job.name) not in self._jobs:
            return
        st = job.obj["status"]
        new = dict(st)
        for key, value in (
            ("active", len(job.active)),
            ("succeeded", job.succeeded),
            ("failed", job.failed),
        ):
            if value:
                new[key] = value
            else:
                new.pop(key, None)
        new["ready"] = sum(1 for p in job.active if p.obj["status"].get("phase") == "Running")
        new["terminating"] = 0
        new["uncountedTerminatedPods"] = {}
        if job.obj["spec"]["completionMode"] == "Indexed" and job.completed_indexes:
            new["completedIndexes"] = _ranges(job.completed_indexes)
        if job.obj["spec"].get("backoffLimitPerIndex") is not None:
            new["failedIndexes"] = _ranges(job.failed_indexes)  # "" while none has failed
        if new != st:
            job.obj["status"] = new
            self._emit("jobs", "MODIFIED", job.obj)

    async def _control(self, job: _Job) -> None:
        spec = job.obj["spec"]
        indexed = spec["completionMode"] == "Indexed"
        completions = int(spec["completions"])
        parallelism = int(spec["parallelism"])
        backoff = int(spec["backoffLimit"])
        per_index = spec.get("backoffLimitPerIndex")
        max_failed = spec.get("maxFailedIndexes")
        todo: deque[int] = deque(range(completions)) if indexed else deque()
        job.obj["status"]["startTime"] = _now()
        self._sync_job_status(job)
        tasks: dict[asyncio.Task, _Pod] = {}
        failure: tuple[str, str] | None = None
        try:
            async with asyncio.timeout(spec.get("activeDeadlineSeconds")):
                while True:
                    refused = False
                    while len(tasks) < parallelism and (
                        todo if indexed else job.succeeded + len(tasks) < completions
                    ):
                        index = todo[0] if indexed else None
                        why = self._admit(job, index)
                        if why is not None:  # no pod: an event, and another try later
                            self._failed_create(job, why)
                            refused = True
                            break
                        if indexed:
                            todo.popleft()
                        pod = self._new_pod(job, index)
                        assert pod.task is not None
                        tasks[pod.task] = pod
                    self._sync_job_status(job)
                    if not tasks:
                        if refused:
                            await asyncio.sleep(self.create_retry_seconds)
                            continue
                        break
                    done, _ = await asyncio.wait(
                        tasks,
                        timeout=self.create_retry_seconds if refused else None,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    for t in done:
                        pod = tasks.pop(t)
                        job.active.discard(pod)
                        ok = not t.cancelled() and t.exception() is None and t.result()
                        if ok:
                            job.succeeded += 1
                            if pod.index is not None:
                                job.completed_indexes.add(pod.index)
                        else:
                            job.failed += 1
                            if pod.index is None:
                                continue
                            failures = job.index_failures[pod.index] = (
                                job.index_failures.get(pod.index, 0) + 1
                            )
                            if per_index is not None and failures > int(per_index):
                                job.failed_indexes.add(pod.index)  # not retried: the index failed
                            else:
                                todo.append(pod.index)
                    if job.failed > backoff:
                        failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                        break
                    if max_failed is not None and len(job.failed_indexes) > int(max_failed):
                        failure = (
                            "MaxFailedIndexesExceeded",
                            "Job has exceeded the specified maximal number of failed indexes",
                        )
                        break
                if failure is None and job.failed_indexes:  # every index succeeded or failed
                    failure = ("FailedIndexes", "Job has failed indexes")
        except TimeoutError:
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure is not None and tasks:
            await asyncio.gather(*(self._delete_pod(p, None) for p in tasks.values()))
            for t, pod in tasks.items():
                job.active.discard(pod)
                if not (not t.cancelled() and t.exception() is None and t.result()):
                    job.failed += 1
        self._sync_job_status(job)
        now = _now()

        def cond(type_: str, reason: str, message: str) -> dict:
            return {
                "type": type_,
                "status": "True",
                "lastProbeTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }

        st = job.obj["status"]
        if failure is None:
            msg = "Reached expected number of succeeded pods"
            st["conditions"] = [
                cond("SuccessCriteriaMet", "CompletionsReached", msg),
                cond("Complete", "CompletionsReached", msg),
            ]
            st["completionTime"] = now
        else:
            st["conditions"] = [cond("FailureTarget", *failure), cond("Failed", *failure)]
        if not job.deleting:
            self._emit("jobs", "MODIFIED", job.obj)
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            await asyncio.sleep(float(ttl))
            if not job.deleting:
                await self._start_job_deletion(job, "Background", None)

    # -- pods -----------------------------------------------------------------------------------

    def _new_pod(self, job: _Job, index: int | None) -> _Pod:
        jmeta = job.obj["metadata"]
        template = copy.deepcopy(job.obj["spec"]["template"])
        tmeta = template.get("metadata") or {}
        prefix = f"{job.name}-" if index is None else f"{job.name}-{index}-"
        name = prefix + _suffix()
        while (job.namespace, name) in self._pods:
            name = prefix + _suffix()
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        if index is not None:
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            if job.obj["spec"].get("backoffLimitPerIndex") is not None:
                annotations[FAILURE_COUNT_KEY] = str(job.index_failures.get(index, 0))
        spec = template["spec"]
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": prefix,
                "namespace": job.namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job.name,
                        "uid": jmeta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": self._qos(spec)},
        }
        pod = _Pod(obj, job, index)
        job.pods.append(pod)
        job.active.add(pod)
        self._pods[(job.namespace, name)] = pod
        self._emit("pods", "ADDED", obj)
        pod.task = self._spawn(self._lifecycle(pod))
        return pod

    @staticmethod
    def _qos(spec: dict) -> str:
        kinds = set()
        for c in spec.get("containers", []):
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            if not req and not lim:
                kinds.add("BestEffort")
            elif all(lim.get(k) is not None and req.get(k, lim[k]) == lim[k] for k in ("cpu", "memory")):
                kinds.add("Guaranteed")
            else:
                kinds.add("Burstable")
        return kinds.pop() if len(kinds) == 1 else "Burstable"

    def _held_now(self, pod: _Pod) -> bool:
        return "*" in self._held or (pod.job is not None and pod.job.name in self._held)

    def _take_fate(self, pod: _Pod) -> _Fate | None:
        for key in (pod.job.name if pod.job else None, None):
            queue = self._fates.get(key)
            if queue:
                return queue.popleft()
        return None

    def _conditions(
        self, scheduled: bool, ready: bool, reason: str = "ContainersNotReady"
    ) -> list[dict]:
        now = _now()
        out = [
            {
                "type": "PodScheduled",
                "status": "True" if scheduled else "False",
                "lastTransitionTime": now,
            }
        ]
        out.append({"type": "Initialized", "status": "True", "lastTransitionTime": now})
        for t in ("Ready", "ContainersReady"):
            c = {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
            if not ready:
                c["reason"] = reason
            out.append(c)
        return out

    def _resolve_env(self, pod: _Pod, container: dict) -> dict[str, str]:
        if self.inherit_env:
            env = dict(os.environ)
        else:
            keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYENV_ROOT")
            env = {k: os.environ[k] for k in keep if k in os.environ}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", os.defpath)
        env.update(self.pod_env)
        env["HOSTNAME"] = pod.name
        env["KUBERNETES_SERVICE_HOST"] = "127.0.0.1"
        env["KUBERNETES_SERVICE_PORT"] = str(self.port)
        if pod.index is not None:
            env["JOB_COMPLETION_INDEX"] = str(pod.index)
        declared: dict[str, str] = {}
        for item in container.get("env") or []:
            name = item.get("name")
            if not name:
                continue
            if "value" in item:
                value = self._expand(str(item.get("value") or ""), declared)
            else:
                value = self._value_from(pod, container, item.get("valueFrom") or {})
                if value is None:
                    continue
            declared[name] = value
        env.update(declared)
        env.update(self.pod_env_override)
        return env

    @staticmethod
    def _expand(text: str, env: dict[str, str]) -> str:
        def sub(m: re.Match) -> str:
            if m[0] == "$$":
                return "$"
            return env.get(m[1], m[0])

        return _VAR_REF.sub(sub, text)

    def _value_from(self, pod: _Pod, container: dict, source: dict) -> str | None:
        ref = source.get("fieldRef")
        if ref:
            path = ref.get("fieldPath", "")
            meta = pod.obj["metadata"]
            m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if m:
                return (meta.get(m[1]) or {}).get(m[2], "")
            simple = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": NODE_NAME,
                "spec.serviceAccountName": pod.obj["spec"].get("serviceAccountName", "default"),
                "status.hostIP": "127.0.0.1",
                "status.podIP": pod.obj["status"].get("podIP", ""),
            }
            return simple.get(path, "")
        ref = source.get("resourceFieldRef")
        if ref:
            res = container.get("resources") or {}
            kind, _, what = ref.get("resource", "").partition(".")
            return str((res.get(kind) or {}).get(what, ""))
        return None  # secretKeyRef / configMapKeyRef: nothing to read here

    async def _lifecycle(self, pod: _Pod) -> bool:
        """Runs the pod to a terminal phase; True when it succeeded."""
        obj, st = pod.obj, pod.obj["status"]
        container = obj["spec"]["containers"][0]
        cname, image = container["name"], container.get("image", "")
        reported = False
        while self._held_now(pod) and not pod.deleted.is_set():
            if not reported:
                reported = True
                st["conditions"] = [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes "
                        "are available: 1 No preemption victims found for incoming pod.",
                        "lastTransitionTime": _now(),
                    }
                ]
                self._emit("pods", "MODIFIED", obj)
            assert self._release is not None
            release = self._release
            await _first(release.wait(), pod.deleted.wait())
        if pod.deleted.is_set():
            st["phase"] = "Failed"
            self._emit("pods", "MODIFIED", obj)
            return False

        self._pod_ip += 1
        obj["spec"]["nodeName"] = NODE_NAME
        st.update(
            phase="Pending",
            conditions=self._conditions(True, False),
            hostIP="127.0.0.1",
            hostIPs=[{"ip": "127.0.0.1"}],
            podIP=f"10.244.{self._pod_ip // 250 % 250}.{self._pod_ip % 250 + 2}",
            startTime=_now(),
            containerStatuses=[
                {
                    "name": cname,
                    "image": image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {},
                }
            ],
        )
        st["podIPs"] = [{"ip": st["podIP"]}]
        self._emit("pods", "MODIFIED", obj)
        if self.pending_seconds:
            await _first(asyncio.sleep(self.pending_seconds), pod.deleted.wait())
        if not pod.deleted.is_set():
            await self._kubelet_checks(pod, container)
        if pod.deleted.is_set():
            st["phase"] = "Failed"
            self._emit("pods", "MODIFIED", obj)
            return False

        fate = self._take_fate(pod)
        env = self._resolve_env(pod, container)
        argv = [self._expand(str(a), env) for a in (container.get("command") or [])]
        argv += [self._expand(str(a), env) for a in (container.get("args") or [])]
        cwd = self.workdir / pod.namespace / pod.name
        cwd.mkdir(parents=True, exist_ok=True)
        wd = container.get("workingDir")
        if wd and os.path.isdir(wd):
            cwd = Path(wd)
        container_id = "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex
        image_id = "docker.io/library/fake@sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2
        cs = st["containerStatuses"][0]
        started_at = _now()
        try:
            if not argv:
                raise OSError("no command: this emulator cannot run an image's entrypoint")
            proc = await asyncio.create_subprocess_exec(
                *self.container_wrapper,
                *argv,
                cwd=str(cwd),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            st["phase"] = "Failed"
            st["conditions"] = self._conditions(True, False, "PodFailed")
            cs.update(
                imageID=image_id,
                containerID=container_id,
                state={
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": f"failed to create containerd task: exec: {e}",
                        "startedAt": "1970-01-01T00:00:00Z",
                        "finishedAt": _now(),
                        "containerID": container_id,
                    }
                },
            )
            pod.started = True
            pod.log_done = True
            pod.notify_log()
            self._emit("pods", "MODIFIED", obj)
            return False

        pod.proc = proc
        pod.started = True
        self._all_procs.append(proc)
        job = pod.job
        if job is not None:
            job.running += 1
            job.peak_running = max(job.peak_running, job.running)
            key = (job.namespace, job.name)
            self._peaks[key] = max(self._peaks.get(key, 0), job.running)
        st["phase"] = "Running"
        st["conditions"] = self._conditions(True, True)
        cs.update(
            imageID=image_id,
            containerID=container_id,
            ready=True,
            started=True,
            state={"running": {"startedAt": started_at}},
        )
        self._emit("pods", "MODIFIED", obj)
        if job is not None:
            self._sync_job_status(job)

        reader = asyncio.get_running_loop().create_task(self._read_log(pod, proc))
        exited = asyncio.get_running_loop().create_task(proc.wait())
        deleted = asyncio.get_running_loop().create_task(pod.deleted.wait())
        waits: set[asyncio.Task] = {exited, deleted}
        fate_timer = None
        if fate is not None:
            fate_timer = asyncio.get_running_loop().create_task(asyncio.sleep(fate.after))
            waits.add(fate_timer)
        killed_by = None
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if exited not in done:
                if fate_timer is not None and fate_timer in done:
                    killed_by = fate.kind if fate else None
                    if killed_by == "oom":
                        self._killpg(proc, signal.SIGKILL)
                    else:
                        await self._terminate(proc, exited, 0.5)
                else:
                    killed_by = "delete"
                    grace = obj["metadata"].get("deletionGracePeriodSeconds", 30)
                    await self._terminate(proc, exited, grace)
            await exited
        finally:
            for t in (deleted, fate_timer):
                if t is not None:
                    t.cancel()
            # The container is gone: so is anything it started (and the pipe they hold).
            self._killpg(proc, signal.SIGKILL)
        await reader
        if job is not None:
            job.running -= 1
        if fate is not None and killed_by is None:
            killed_by = fate.kind  # the hook decides the outcome even if the process was quicker
        code = _exit_code(proc.returncode if proc.returncode is not None else -9)
        term: dict[str, Any] = {
            "exitCode": code,
            "startedAt": started_at,
            "finishedAt": _now(),
            "containerID": container_id,
        }
        if killed_by == "oom":
            term.update(exitCode=137, reason="OOMKilled")
        elif killed_by == "evict":
            term.update(exitCode=137, reason="Error")
        else:
            term["reason"] = "Completed" if code == 0 else "Error"
        ok = term["exitCode"] == 0 and killed_by is None
        st["phase"] = "Succeeded" if ok else "Failed"
        st["conditions"] = self._conditions(True, False, "PodCompleted" if ok else "PodFailed")
        if killed_by == "evict":
            st["reason"] = "Evicted"
            st["message"] = (
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki."
            )
            st["conditions"].append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": "The node was low on resource: memory.",
                    "lastTransitionTime": _now(),
                }
            )
        cs.update(ready=False, started=False, state={"terminated": term})
        pod.log_done = True
        pod.notify_log()
        self._emit("pods", "MODIFIED", obj)
        return ok

    async def _kubelet_checks(self, pod: _Pod, container: dict) -> None:
        """What the kubelet does before it starts the container: pull the image (failing as
        fail_image_pull says) and refuse to run as root a container that must not
        (CreateContainerConfigError). A pod that cannot start waits Pending until deleted."""
        cs = pod.obj["status"]["containerStatuses"][0]
        image = container.get("image", "")

        def waiting(reason: str, message: str) -> None:
            cs["state"] = {"waiting": {"reason": reason, "message": message}}
            self._emit("pods", "MODIFIED", pod.obj)

        for failure in self._pull_failures:
            if failure[0] == image and failure[2] != 0:
                if failure[2] is not None:
                    failure[2] -= 1
                seconds = failure[1]
                why = "i/o timeout" if seconds is not None else f"{image}: not found"
                waiting("ErrImagePull", f'failed to pull and unpack image "{image}": {why}')
                await _first(asyncio.sleep(0.3), pod.deleted.wait())
                waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
                if seconds is None:
                    await pod.deleted.wait()
                else:
                    await _first(asyncio.sleep(seconds), pod.deleted.wait())
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
                break
        psc = pod.obj["spec"].get("securityContext") or {}
        sc = container.get("securityContext") or {}
        user = sc.get("runAsUser", psc.get("runAsUser"))
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) and (
            user == 0 or (user is None and self.image_users.get(image, 0) == 0)
        ):
            ref = (
                f'(pod: "{pod.name}_{pod.namespace}({pod.obj["metadata"]["uid"]})", container: '
                f"{container.get('name')})"
            )
            waiting(
                "CreateContainerConfigError",
                f"container has runAsNonRoot and image will run as root {ref}",
            )
            await pod.deleted.wait()

    async def _read_log(self, pod: _Pod, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        buf = b""
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if lines:
                ts = _now_nano()
                pod.log.extend((ts, line + b"\n") for line in lines)
                pod.notify_log()
        if buf:
            pod.log.append((_now_nano(), buf))
            pod.notify_log()

    @staticmethod
    def _killpg(proc: asyncio.subprocess.Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    async def _terminate(
        self, proc: asyncio.subprocess.Process, exited: asyncio.Task, grace: float
    ) -> None:
        if float(grace) <= 0:  # a forced deletion
            self._killpg(proc, signal.SIGKILL)
            return
        self._killpg(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), min(float(grace), self.max_grace_seconds))
        except TimeoutError:
            self._killpg(proc, signal.SIGKILL)

    async def _delete_pod(self, pod: _Pod, grace: float | None) -> None:
        """Graceful deletion: deletionTimestamp, the process stopped, then DELETED."""
        if pod.removed:
            return
        if not pod.deleting:
            pod.deleting = True
            meta = pod.obj["metadata"]
            if grace is None:
                grace = float(pod.obj["spec"].get("terminationGracePeriodSeconds", 30))
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = int(grace)
            self._emit("pods", "MODIFIED", pod.obj)
            pod.deleted.set()
        if pod.task is not None:
            await asyncio.wait({pod.task})
        if not pod.removed:
            pod.removed = True
            pod.notify_log()
            self._pods.pop((pod.namespace, pod.name), None)
            self._emit("pods", "DELETED", pod.obj)

    async def _list_pods(self, request: web.Request) -> web.StreamResponse:
        if _flag(request.query, "watch"):
            return await self._watch(request, "pods")
        return self._list(request, "pods", [p.obj for p in self._pods.values()])

    def _find_pod(self, request: web.Request) -> _Pod:
        ns, name = request.match_info["ns"], request.match_info["name"]
        pod = self._pods.get((ns, name))
        if pod is None:
            raise _not_found("pods", name)
        return pod

    async def _get_pod(self, request: web.Request) -> web.Response:
        return web.json_response(self._find_pod(request).obj)

    async def _delete_pod_handler(self, request: web.Request) -> web.Response:
        pod = self._find_pod(request)
        _, grace = self._delete_options(request, await self._json(request))
        self._spawn(self._delete_pod(pod, grace))
        await asyncio.sleep(0)  # let the deletion stamp the object first
        return web.json_response(pod.obj)

    async def _delete_pods(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        _, grace = self._delete_options(request, await self._json(request))
        labels, fields = self._selectors(request)
        for pod in list(self._pods.values()):
            meta = pod.obj["metadata"]
            if meta["namespace"] == ns and labels(meta.get("labels") or {}) and fields(pod.obj):
                self._spawn(self._delete_pod(pod, grace))
        await asyncio.sleep(0)
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        )

    async def _pod_log(self, request: web.Request) -> web.StreamResponse:
        pod = self._find_pod(request)
        q = request.query
        names = [c["name"] for c in pod.obj["spec"]["containers"]]
        container = q.get("container")
        if container and container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod.name}")
        if not container and len(names) > 1:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {pod.name}, choose one of: {names}",
            )
        if not pod.started:
            cname = container or names[0]
            reason = "ContainerCreating" if pod.obj["spec"].get("nodeName") else "Pending"
            raise ApiError(
                400,
                "BadRequest",
                f'container "{cname}" in pod "{pod.name}" is waiting to start: {reason}',
            )
        stamps = _flag(q, "timestamps")
        tail = q.get("tailLines")
        limit = int(q.get("limitBytes") or 0) or None

        def render(entries: list[tuple[str, bytes]]) -> bytes:
            return b"".join((ts.encode() + b" " + line) if stamps else line for ts, line in entries)

        start = max(0, len(pod.log) - int(tail)) if tail not in (None, "") else 0
        if not _flag(q, "follow"):
            data = render(pod.log[start:])
            return web.Response(body=data[:limit] if limit else data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        pos = start
        try:
            while not self._closing:
                event = pod.log_event
                if pos < len(pod.log):
                    data = render(pod.log[pos:])
                    pos = len(pod.log)
                    if limit is not None:
                        data = data[: limit - sent]
                    sent += len(data)
                    await resp.write(data)
                    if limit is not None and sent >= limit:
                        break
                    continue
                if pod.log_done or pod.removed:
                    break
                try:
                    await asyncio.wait_for(event.wait(), 1.0)
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        return resp
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client closed the stream
        return resp


async def _first(*aws: Any) -> None:
    """Wait for the first of several awaitables; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


@pytest.fixture
def k8s_api(tmp_path: Path) -> Iterator[FakeK8s]:
    """A fresh emulated Kubernetes API server for one test (see the module docstring)."""
    server = FakeK8s(workdir=tmp_path / "k8s-pods").start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    """`python tests/fakes/k8s_server.py [PORT]`: serve until interrupted, outside the test process
    (e.g. so that a benchmark measures the scheduler's memory without the emulator's)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch-timeout", type=float, default=None)
    parser.add_argument("--history-limit", type=int, default=100_000)
    args = parser.parse_args()
    server = FakeK8s()
    server.watch_timeout = args.watch_timeout
    server.history_limit = args.history_limit
    server.inherit_env = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(server.url, flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()  # pods' processes end with it


if __name__ == "__main__":
    main()
