"""@kubernetes with a kube config whose user's token comes from an exec plugin (EKS `aws eks
get-token`, GKE, AKS), against the emulator requiring bearer tokens that expire: the backend renews
the token before it expires and on a 401, and a plugin that cannot renew it fails the run clearly."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes_asyncio")

from k8s_support import run

from aflow.engine.events import TaskFailed

FLOWS = Path(__file__).resolve().parent / "remote_flows"
sys.path.insert(0, str(FLOWS))

# An exec plugin as `aws eks get-token` is one: prints an ExecCredential with a fresh token (from the
# emulator), with or without its expiry; after `calls` runs it fails as an expired SSO session does.
PLUGIN = """
import json, pathlib, sys, urllib.request
url, ttl, with_expiry, calls, counter = sys.argv[1:6]
count = pathlib.Path(counter)
done = int(count.read_text()) if count.exists() else 0
count.write_text(str(done + 1))
if int(calls) and done >= int(calls):
    print("Error when retrieving token from sso: Token has expired and refresh failed", file=sys.stderr)
    sys.exit(255)
req = urllib.request.Request(url + "/_fake/token?ttl=" + ttl, method="POST")
got = json.load(urllib.request.urlopen(req))
status = {"token": got["token"]}
if with_expiry == "1":
    status["expirationTimestamp"] = got["expirationTimestamp"]
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": status}))
"""


def use_exec_plugin(
    k8s: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, ttl: int, expiry: bool, calls: int = 0
) -> Path:
    """A kube config whose user runs PLUGIN; the emulator then requires its tokens. Returns the
    file counting the plugin's runs."""
    plugin, counter = tmp_path / "get_token.py", tmp_path / "plugin-runs"
    plugin.write_text(PLUGIN)
    args = [str(plugin), k8s.url, str(ttl), "1" if expiry else "0", str(calls), str(counter)]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": k8s.url}}],
        "users": [
            {
                "name": "eks-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": sys.executable,
                        "args": args,
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": "eks", "context": {"cluster": "fake", "user": "eks-user"}}],
        "current-context": "eks",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    monkeypatch.delenv("AFLOW_KUBERNETES_HOST")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    k8s.require_tokens()
    k8s.watch_timeout = 1.0  # watches are reopened often, each with the token of the moment
    return counter


@pytest.mark.parametrize("expiry", [True, False], ids=["expiry-given", "no-expiry"])
def test_exec_plugin_token_is_renewed_during_a_long_run(
    k8s: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expiry: bool
) -> None:
    from k8s_foreach import K8sForeachFlow

    # Renewed a quarter of its life ahead: 1.5 s, a margin a loaded machine's requests keep to.
    ttl = 6 if expiry else 3
    counter = use_exec_plugin(k8s, tmp_path, monkeypatch, ttl=ttl, expiry=expiry)
    result, events = run(K8sForeachFlow, k8s, timeout=90, params={"width": 3, "sleep": 2.0 * ttl})
    assert result.successful, [e for _, e in events if isinstance(e, TaskFailed)]
    assert result["join"].task.data.squares == [0, 1, 4]
    assert int(counter.read_text()) >= 2  # renewed at least once
    refused = [r for r in k8s.requests if r.status == 401]
    if expiry:
        # Renewed ahead of its expiry: the API hardly ever sees a stale token.
        assert len(refused) <= 3, refused
    else:
        assert refused  # renewed when the API said 401


def test_exec_plugin_that_cannot_renew_fails_the_tasks_clearly(
    k8s: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_foreach import K8sForeachFlow

    use_exec_plugin(k8s, tmp_path, monkeypatch, ttl=3, expiry=True, calls=1)
    started = time.monotonic()
    result, events = run(K8sForeachFlow, k8s, timeout=90, params={"width": 3, "sleep": 30.0})
    assert not result.successful
    failed = [e for _, e in events if isinstance(e, TaskFailed)]
    assert failed
    message = failed[0].message
    assert "could not be renewed" in message and "get_token.py" in message
    assert "Token has expired and refresh failed" in message  # the plugin's own words
    assert time.monotonic() - started < 60  # not a hang until the pods end
