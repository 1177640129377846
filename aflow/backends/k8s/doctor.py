"""`aflow doctor --kubernetes`: checks a Kubernetes set-up for aflow end to end, in the order a run
needs it: the settings, credentials and the API server, the namespace, each RBAC permission the
backend uses (a SelfSubjectAccessReview each: PERMISSIONS is that list, and the README's Role must
grant exactly it), the datastore, then real runs through the backend: one task (its image pulled,
its output read back), a small foreach, and a cancelled run whose Jobs and pods must go. Each check
says what it found and, when it fails, what to do. It creates a few small Jobs (0.25 CPU, 256 MiB)
in the namespace, and leaves none running. A check that fails stops the ones that depend on it."""

from __future__ import annotations

import contextlib
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.errors import BackendUnavailable
from aflow.backends.k8s.api import REQUEST_SECONDS, error_text
from aflow.backends.k8s.auth import CredentialsError, clients
from aflow.backends.k8s.manifests import FLOW_LABEL, RUN_ID_LABEL, label_value
from aflow.backends.k8s.settings import KubernetesSettings
from aflow.backends.k8s.status import job_conditions
from aflow.backends.k8s.watch import list_all
from aflow.exception import AflowException

FLOW_NAME = "AflowDoctorFlow"
MARK = "aflow-doctor:"
LOGINS = "`aws sso login` / `aws eks update-kubeconfig`, `gcloud auth login`, `az login`"


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str
    resource: str
    subresource: str = ""
    why: str = ""

    def __str__(self) -> str:
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{self.verb} {kind}{'/' + self.subresource if self.subresource else ''}"


# Every call the backend makes in a namespace (backend.py, watch.py, logs.py), and why.
PERMISSIONS = (
    Permission("create", "batch", "jobs", why="one Job per group of tasks"),
    Permission("list", "batch", "jobs", why="the Job watch starts from a list"),
    Permission("watch", "batch", "jobs", why="the Job watch"),
    Permission("delete", "batch", "jobs", why="stopping a run's Jobs"),
    Permission("list", "", "pods", why="the pod watch starts from a list"),
    Permission("watch", "", "pods", why="the pod watch"),
    Permission("delete", "", "pods", why="@timeout stops one foreach child's pod"),
    Permission("get", "", "pods", "log", why="the tasks' output"),
    Permission("list", "", "events", why="explaining pods that cannot be created"),
    Permission("watch", "", "events", why="explaining pods that cannot be created"),
)


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool | None  # None: a warning (the checks go on)
    said: str
    fix: str = ""


class Stop(Exception):
    """A check failed that later checks depend on."""


FLOW_SOURCE = """
from aflow import FlowSpec, Parameter, kubernetes, step


class AflowDoctorFlow(FlowSpec):
    width = Parameter("width", default=1)
    sleep = Parameter("sleep", default=0)

    @step
    def start(self):
        self.items = list(range(int(self.width)))
        self.next(self.work, foreach="items")

    @kubernetes({options})
    @step
    def work(self):
        import platform, time
        print("{mark} task", self.input, "on Python", platform.python_version(), flush=True)
        time.sleep(float(self.sleep))
        self.square = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


class Doctor:
    """Runs the checks, telling each Finding to `say` as it comes."""

    def __init__(
        self,
        say: Callable[[Finding], None],
        *,
        datastore: str | None,
        datastore_root: str | None,
        namespace: str | None = None,
        image: str | None = None,
        timeout: float = 600.0,
        settings: KubernetesSettings | None = None,
    ) -> None:
        self.say, self.datastore, self.root = say, datastore, datastore_root
        self.timeout = timeout
        self.settings = settings or KubernetesSettings.from_env()
        self.namespace = namespace or self.settings.namespace
        self.image = image
        self.failed = False
        self._api: client.ApiClient | None = None

    def found(self, check: str, ok: bool | None, said: str, fix: str = "") -> None:
        self.failed |= ok is False
        self.say(Finding(check, ok, said, fix))

    async def run(self) -> bool:
        """Every check; True when none failed."""
        try:
            await self.cluster()
            try:
                await self.namespace_exists()
                await self.permissions()
                await self.store()
                with tempfile.TemporaryDirectory(prefix="aflow-doctor-") as folder:
                    flow = self.flow_file(Path(folder))
                    await self.one_task(flow)
                    await self.foreach(flow)
                    await self.cancel(flow)
            finally:
                if self._api is not None:
                    with contextlib.suppress(Exception):
                        await self._api.close()
        except Stop:
            pass
        return not self.failed

    # -- the cluster ---------------------------------------------------------------------------

    async def cluster(self) -> None:
        s = self.settings
        where = (
            f"AFLOW_KUBERNETES_HOST={s.host}"
            if s.host
            else "the in-cluster service account"
            if s.in_cluster
            else f"kube config {s.kubeconfig or '~/.kube/config'}, context "
            f"{s.context or '(its current one)'}"
        )
        try:
            self._api, logs, host = await clients(s, 1)
            await logs.close()
            with anyio.fail_after(REQUEST_SECONDS):
                info = await client.VersionApi(self._api).get_code()
        except BackendUnavailable as e:
            self.found(
                "credentials", False, str(e), "fix the kube config (`kubectl get pods` must work)"
            )
            raise Stop from None
        except CredentialsError as e:
            self.found("credentials", False, str(e), f"renew the login the plugin uses ({LOGINS})")
            raise Stop from None
        except ApiException as e:
            if e.status == 401:
                self.found(
                    "credentials",
                    False,
                    f"the API server refused the credentials of {where} (HTTP 401 Unauthorized): "
                    "the token expired, or is not for this cluster",
                    f"renew the login ({LOGINS}), or pick the right context "
                    "(AFLOW_KUBERNETES_CONTEXT, `kubectl config use-context`)",
                )
            else:
                self.found("credentials", False, f"{where}: {error_text(e)}", "check the API server")
            raise Stop from None
        except Exception as e:
            self.found(
                "credentials",
                False,
                f"cannot reach the Kubernetes API ({where}): {error_text(e)}",
                "check the server address and the network (VPN, firewall); `kubectl version` must work",
            )
            raise Stop from None
        self.found("credentials", True, f"API server {info.git_version} at {host} ({where})")

    async def namespace_exists(self) -> None:
        assert self._api is not None
        ns = self.namespace
        try:
            await client.CoreV1Api(self._api).read_namespace(ns, _request_timeout=REQUEST_SECONDS)
        except ApiException as e:
            if e.status == 404:
                self.found(
                    "namespace",
                    False,
                    f"namespace {ns} does not exist",
                    f"create it (`kubectl create namespace {ns}`), or name another with "
                    "--namespace / AFLOW_KUBERNETES_NAMESPACE / @kubernetes(namespace=)",
                )
                raise Stop from None
            if e.status != 403:
                raise
            self.found(
                "namespace",
                None,
                f"cannot read namespace {ns} itself (a Role grants nothing on Namespace objects): "
                "the runs below show whether Jobs can be made in it",
            )
            return
        self.found("namespace", True, f"namespace {ns} exists")

    async def permissions(self) -> None:
        assert self._api is not None
        auth = client.AuthorizationV1Api(self._api)
        missing: list[Permission] = []
        for want in PERMISSIONS:
            attrs = {"namespace": self.namespace, "verb": want.verb, "group": want.group}
            attrs["resource"] = want.resource
            if want.subresource:
                attrs["subresource"] = want.subresource
            body = {"spec": {"resourceAttributes": attrs}}
            review = await auth.create_self_subject_access_review(
                body,  # type: ignore[arg-type]  # the client takes the JSON as is
                _request_timeout=REQUEST_SECONDS,
            )
            if not review.status.allowed:
                missing.append(want)
        if missing:
            self.found(
                "permissions",
                False,
                f"in namespace {self.namespace} the credentials may not: "
                + "; ".join(f"{p} ({p.why})" for p in missing),
                'apply the Role and RoleBinding in the README ("Kubernetes on a real cluster") '
                "to this user in this namespace; `kubectl auth can-i --list -n "
                f"{self.namespace}` shows what it may do",
            )
            raise Stop
        self.found("permissions", True, f"all {len(PERMISSIONS)} that aflow uses are granted")

    async def store(self) -> None:
        from aflow.stores.factory import default_datastore, open_store

        try:
            if (self.datastore or default_datastore()) == "local":
                raise AflowException(
                    "the local datastore: a pod cannot reach it. Pass --datastore s3 / gs / azure "
                    "and --datastore-root (or AFLOW_DEFAULT_DATASTORE and its root)"
                )
            store = open_store(self.datastore, self.root)
            try:
                await store.check()
            finally:
                await store.aclose()
        except AflowException as e:
            self.found("datastore", False, str(e), "the pods and this machine must both reach it")
            raise Stop from None
        self.found("datastore", True, f"{store.url} is usable from here (the pods use it too)")

    # -- runs ------------------------------------------------------------------------------------

    def flow_file(self, folder: Path) -> Path:
        options = f"cpu=0.25, memory=256, namespace={self.namespace!r}"
        if self.image:
            options += f", image={self.image!r}"
        path = folder / "aflow_doctor_flow.py"
        path.write_text(textwrap.dedent(FLOW_SOURCE).format(options=options, mark=MARK))
        return path

    async def _run(
        self, flow: Path, width: int, sleep: float = 0.0, stop_on_mark: bool = False
    ) -> tuple[Any, list[str], list[str], str]:
        """Run the doctor's flow: (its Run or None when stopped, the marked output lines, the
        failures' messages, the run id)."""
        from aflow.engine.events import OutputLine, TaskFailed
        from aflow.engine.flow_loader import load_flow_file
        from aflow.engine.runner import start_flow

        flow_cls = load_flow_file(str(flow))
        marked: list[str] = []
        failures: list[str] = []
        run_id = ""
        params = {"width": width, "sleep": sleep}
        options: dict[str, Any] = {"datastore": self.datastore, "datastore_root": self.root}
        with anyio.move_on_after(self.timeout) as limit, anyio.CancelScope() as stop:
            try:
                async with start_flow(flow_cls, params, **options) as running:
                    run_id = running.run_id
                    async for event in running.events():
                        if isinstance(event, OutputLine) and MARK in event.line:
                            marked.append(event.line.split(MARK, 1)[1].strip())
                            if stop_on_mark:
                                stop.cancel()
                        elif isinstance(event, TaskFailed):
                            failures.append(event.message)
                return await running.wait(), marked, failures, run_id
            except AflowException as e:  # refused before it started
                return None, marked, [*failures, str(e)], run_id
        if limit.cancelled_caught:
            failures.append(f"the run did not end within {self.timeout:.0f} s (--timeout)")
        return None, marked, failures, run_id

    async def one_task(self, flow: Path) -> None:
        image = self.image or "the default image (AFLOW_KUBERNETES_IMAGE / AFLOW_DEFAULT_IMAGE)"
        started = time.monotonic()
        done, marked, failures, run_id = await self._run(flow, 1)
        took = time.monotonic() - started
        if done is None or not done.successful:
            why = "; ".join(failures) or "no task failed, yet the run did not succeed"
            pulling = any(w in why for w in ("pull", "InvalidImageName", "image"))
            check = "image" if pulling else "one task"
            fix = (
                "check the image's name and that the nodes can pull it (registry access, "
                "imagePullSecrets on the service account); --image tries another"
                if pulling
                else f"see the task's log: aflow logs {FLOW_NAME}/{run_id} (with the same datastore)"
            )
            self.found(check, False, f"run {FLOW_NAME}/{run_id} failed: {why}", fix)
            raise Stop
        self.found("image", True, f"{image} was pulled and ran: {marked[0] if marked else '?'}")
        if not marked:
            self.found(
                "logs",
                False,
                "the task's output did not come back",
                "the credentials need `get pods/log`; see the README's Role",
            )
        else:
            self.found("logs", True, "the task's output came back through the pod's log")
        self.found("one task", True, f"run {FLOW_NAME}/{run_id} succeeded in {took:.0f} s")

    async def foreach(self, flow: Path) -> None:
        done, _, failures, run_id = await self._run(flow, 3)
        squares = done["join"].task.data.squares if done is not None and done.successful else None
        if squares != [0, 1, 4]:
            why = "; ".join(failures) or f"its join got {squares}, not [0, 1, 4]"
            self.found(
                "foreach",
                False,
                f"a 3-way foreach (one Indexed Job) failed: {why}",
                "Indexed Jobs need Kubernetes 1.21+; backoffLimitPerIndex 1.29+ (see the README)",
            )
            raise Stop
        self.found("foreach", True, f"a 3-way foreach ran as one Indexed Job (run {run_id})")

    async def cancel(self, flow: Path) -> None:
        _, marked, _, run_id = await self._run(flow, 1, sleep=600, stop_on_mark=True)
        if not marked:
            self.found("cancel", False, "the task to cancel never started", "see the checks above")
            return
        left = await self._left_running(run_id)
        if left:
            self.found(
                "cancel",
                False,
                f"cancelled run {run_id} still has {', '.join(left)} after 60 s",
                "the credentials need `delete jobs.batch` (and the cluster's garbage collector "
                "must run); delete them by hand: kubectl delete job -l "
                f"{RUN_ID_LABEL}={label_value(run_id)} -n {self.namespace}",
            )
            return
        self.found("cancel", True, f"cancelling run {run_id} deleted its Job and pod")

    async def _left_running(self, run_id: str) -> list[str]:
        """This run's Jobs not ended and pods not ending, waited for up to 60 s."""
        assert self._api is not None
        selector = f"{FLOW_LABEL}={FLOW_NAME},{RUN_ID_LABEL}={label_value(run_id)}"
        jobs = client.BatchV1Api(self._api).list_namespaced_job
        pods = client.CoreV1Api(self._api).list_namespaced_pod
        for attempt in range(61):
            if attempt:
                await anyio.sleep(1)  # a real cluster's garbage collector: nothing to wait on
            left = [
                f"Job {j['metadata']['name']}"
                for j in (await list_all(jobs, self.namespace, selector))[0]
                if not job_conditions(j) and not j["metadata"].get("deletionTimestamp")
            ]
            left += [
                f"pod {p['metadata']['name']}"
                for p in (await list_all(pods, self.namespace, selector))[0]
                if (p.get("status") or {}).get("phase") in ("Pending", "Running")
                and not p["metadata"].get("deletionTimestamp")
            ]
            if not left:
                break
        return left
