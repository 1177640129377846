"""Numbers in AFLOW_* variables: a default when unset, and a bad value named, for every settings
object that reads one (they share aflow/env_numbers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aflow.backends.batch_settings import BatchSettings
from aflow.backends.k8s.settings import KubernetesSettings
from aflow.backends.remote import RemoteSettings
from aflow.exception import AflowException
from aflow.stores.transfer import TransferSettings

CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("AFLOW_TRANSFER_CONCURRENCY", TransferSettings.from_env, "concurrency"),
    ("AFLOW_BATCH_POLL_SECONDS", BatchSettings.from_env, "poll_seconds"),
    ("AFLOW_BATCH_TAIL_TASKS", BatchSettings.from_env, "tail_tasks"),
    ("AFLOW_REMOTE_STUCK_SECONDS", lambda: RemoteSettings.from_env("AFLOW_IMAGE"), "stuck_seconds"),
    ("AFLOW_KUBERNETES_CREATE_SECONDS", KubernetesSettings.from_env, "create_seconds"),
]


@pytest.mark.parametrize(("name", "read", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_number_setting(monkeypatch: pytest.MonkeyPatch, name: str, read: Any, field: str) -> None:
    monkeypatch.delenv(name, raising=False)
    default = getattr(read(), field)
    monkeypatch.setenv(name, "")
    assert getattr(read(), field) == default
    monkeypatch.setenv(name, " 7 ")
    assert getattr(read(), field) == 7
    monkeypatch.setenv(name, "lots")
    with pytest.raises(AflowException, match=f"{name}='lots'"):
        read()


def test_a_setting_below_its_minimum_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_KUBERNETES_CREATE_SECONDS", "-5")
    with pytest.raises(AflowException, match=r"AFLOW_KUBERNETES_CREATE_SECONDS='-5'.*at least 0"):
        KubernetesSettings.from_env()
