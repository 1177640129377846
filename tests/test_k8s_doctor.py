"""`aflow doctor --kubernetes` against the Kubernetes emulator: with exactly the README's RBAC Role
enforced every check passes (so that Role is enough, and it grants what the backend calls and no
more); a missing namespace, a missing permission, an expired token and an image that cannot be
pulled each fail with what to do. The emulator's RBAC is checked on its own too."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("kubernetes_asyncio")

import yaml
from conftest import run_cli

from aflow.backends.k8s.doctor import PERMISSIONS, Doctor, Finding

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_role() -> dict[str, Any]:
    text = README.read_text()
    section = text[text.index("The RBAC Role aflow needs") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    docs = list(yaml.safe_load_all(block.group(1)))
    assert [d["kind"] for d in docs] == ["Role", "RoleBinding"]
    assert docs[1]["roleRef"]["name"] == docs[0]["metadata"]["name"]
    role: dict[str, Any] = docs[0]
    return role


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (verb, group, resource)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def doctor(k8s: Any, **options: Any) -> tuple[bool, list[Finding]]:
    found: list[Finding] = []
    datastore, root = k8s.store
    checks = Doctor(found.append, datastore=datastore, datastore_root=root, timeout=120, **options)
    return anyio.run(checks.run), found


def test_the_readme_role_grants_exactly_what_the_backend_uses() -> None:
    wanted = {
        (p.verb, p.group, f"{p.resource}/{p.subresource}" if p.subresource else p.resource)
        for p in PERMISSIONS
    }
    assert granted(readme_role()["rules"]) == wanted


def test_every_check_passes_under_the_readme_role(k8s: Any) -> None:
    k8s.set_role(readme_role()["rules"])
    k8s.set_namespaces({"default"})
    datastore, root = k8s.store
    done = run_cli("doctor", "--kubernetes", "--datastore", datastore, "--datastore-root", root)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for check in ("credentials", "permissions", "datastore", "image", "logs", "one task", "foreach"):
        assert f"ok   {check}:" in out, out
    assert "ok   cancel: cancelling run" in out, out
    # A Role grants nothing on Namespace objects: said, not failed.
    assert "warn namespace: cannot read namespace default itself" in out
    assert not [r for r in k8s.requests if r.status == 403 and "namespaces/default" not in r.path]
    reviews = [r.body for r in k8s.calls("POST", "selfsubjectaccessreviews")]
    assert len(reviews) == len(PERMISSIONS)
    assert not k8s.pods() or all(p["status"]["phase"] not in ("Pending", "Running") for p in k8s.pods())


def test_a_missing_namespace_is_explained(k8s: Any) -> None:
    k8s.set_namespaces({"default"})
    ok, found = doctor(k8s, namespace="team-a")
    assert not ok
    assert [(f.check, f.ok) for f in found] == [("credentials", True), ("namespace", False)]
    assert found[1].said == "namespace team-a does not exist"
    assert "kubectl create namespace team-a" in found[1].fix


def test_a_missing_permission_is_named_with_its_reason(k8s: Any) -> None:
    rules = readme_role()["rules"]
    for rule in rules:
        if rule["resources"] == ["pods"]:
            rule["verbs"] = ["list", "watch"]
    k8s.set_role(rules)
    ok, found = doctor(k8s)
    assert not ok and found[-1].check == "permissions" and found[-1].ok is False
    assert "may not: delete pods (@timeout stops one foreach child's pod)" in found[-1].said
    assert "Role and RoleBinding in the README" in found[-1].fix
    assert not k8s.calls("POST", r"/jobs$")  # no run was tried


def test_an_expired_token_is_explained(
    k8s: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k8s.require_tokens()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": k8s.url}}],
        "users": [{"name": "me", "user": {"token": k8s.issue_token(ttl=0)}}],  # already expired
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
        "current-context": "fake",
    }
    (tmp_path / "config").write_text(json.dumps(config))
    monkeypatch.delenv("AFLOW_KUBERNETES_HOST")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    ok, found = doctor(k8s)
    assert not ok and [f.check for f in found] == ["credentials"]
    assert "refused the credentials" in found[0].said and "HTTP 401" in found[0].said
    assert "the token expired" in found[0].said and "aws sso login" in found[0].fix


def test_an_image_that_cannot_be_pulled_is_explained(k8s: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    k8s.fail_image_pull("registry.example/missing:1")
    monkeypatch.setenv("AFLOW_KUBERNETES_IMAGE_PULL_SECONDS", "1")
    ok, found = doctor(k8s, image="registry.example/missing:1")
    assert not ok and found[-1].check == "image" and found[-1].ok is False
    assert "could not pull its image" in found[-1].said
    assert "imagePullSecrets" in found[-1].fix


def test_the_emulator_names_requests_as_the_api_server_does() -> None:
    from fakes.k8s_access import access_of

    def said(method: str, path: str, **query: str) -> tuple[str, str, str, str]:
        got = access_of(method, path, query)
        assert got is not None
        return got.verb, got.group, got.resource, got.namespace

    assert said("GET", "/apis/batch/v1/namespaces/a/jobs", watch="True") == (
        "watch",
        "batch",
        "jobs",
        "a",
    )
    assert said("GET", "/api/v1/namespaces/a/pods") == ("list", "", "pods", "a")
    assert said("GET", "/api/v1/namespaces/a/pods/p/log") == ("get", "", "pods/log", "a")
    assert said("DELETE", "/api/v1/namespaces/a/pods") == ("deletecollection", "", "pods", "a")
    assert said("GET", "/api/v1/namespaces/a") == ("get", "", "namespaces", "")
    assert access_of("GET", "/version/", {}) is None


def test_the_emulator_refuses_what_the_role_does_not_grant(k8s: Any) -> None:
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    k8s.set_role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])

    async def go() -> tuple[int, str]:
        async with client.ApiClient(k8s.client_configuration()) as api:
            core = client.CoreV1Api(api)
            await core.list_namespaced_pod("default")  # granted
            try:
                await core.delete_namespaced_pod("p", "default")
            except ApiException as e:
                return e.status, json.loads(e.body)["message"]
        return 0, ""

    status, message = anyio.run(go)
    assert status == 403
    assert message.startswith('pods "p" is forbidden: User "system:serviceaccount:')
    assert message.endswith('cannot delete resource "pods" in API group "" in the namespace "default"')
