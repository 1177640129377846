"""`@secrets(sources=[...])`: secrets set as environment variables of one task, as in Metaflow.

A source is a string (`"my-secret"`, or `"aws-secrets-manager.my-secret"` to name the provider)
or a dict (`{"type": ..., "id": ..., "options": {...}, "role": ...}`). Providers:
- `aws-secrets-manager`: AWS Secrets Manager through aioboto3. A JSON object secret gives one
  variable per key (`-`, `.` and `/` become `_`); with `options={"json": False}`, or a binary
  secret, one variable named by `options["env_var_name"]` or the secret's name. The region comes
  from the ARN, `options["region"]`, AFLOW_/METAFLOW_AWS_SECRETS_MANAGER_DEFAULT_REGION or the AWS
  default; `role` (or AFLOW_DEFAULT_SECRETS_ROLE) is assumed first.
- `inline`: `options={"env_vars": {...}}`, Metaflow's provider for tests.
- `local`: `id` is a JSON file holding an object of name to value, read on the task's machine.

The secrets are fetched in the task's own process just before its step runs and only put into
`os.environ` there: never stored as artifacts, never in a record, and never in a message (errors
name the secret and the variable, not the value).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from aflow.exception import AflowException

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DISALLOWED_PREFIXES = ("AFLOW_", "METAFLOW_")


class SecretsError(AflowException):
    headline = "cannot set the step's secrets"


@dataclass(frozen=True)
class SecretsSettings:
    """@secrets' defaults from the environment, each under aflow's name or Metaflow's (METAFLOW_
    in place of AFLOW_), read once per step that asks for secrets."""

    backend_type: str = "aws-secrets-manager"  # AFLOW_DEFAULT_SECRETS_BACKEND_TYPE
    role: str | None = None  # AFLOW_DEFAULT_SECRETS_ROLE
    aws_region: str | None = None  # AFLOW_AWS_SECRETS_MANAGER_DEFAULT_REGION
    aws_role: str | None = None  # AFLOW_AWS_SECRETS_MANAGER_DEFAULT_ROLE

    @classmethod
    def from_env(cls) -> SecretsSettings:
        def read(name: str) -> str | None:
            metaflows = "METAFLOW_" + name.removeprefix("AFLOW_")
            return os.environ.get(name) or os.environ.get(metaflows)

        return cls(
            backend_type=read("AFLOW_DEFAULT_SECRETS_BACKEND_TYPE") or cls.backend_type,
            role=read("AFLOW_DEFAULT_SECRETS_ROLE"),
            aws_region=read("AFLOW_AWS_SECRETS_MANAGER_DEFAULT_REGION"),
            aws_role=read("AFLOW_AWS_SECRETS_MANAGER_DEFAULT_ROLE"),
        )


def parse_source(
    source: Any, role: str | None, settings: SecretsSettings | None = None
) -> tuple[str, str, dict[str, Any], str | None]:
    """(provider, secret id, options, role) of one entry of `sources`."""
    default = (settings or SecretsSettings.from_env()).backend_type
    if isinstance(source, str):
        kind, dot, secret_id = source.partition(".")
        return (kind, secret_id, {}, role) if dot else (default, source, {}, role)
    if not isinstance(source, dict):
        raise SecretsError(f"@secrets sources are strings or dicts, not {type(source).__name__}")
    given, options = source.get("id"), source.get("options", {})
    if not isinstance(given, str):
        raise SecretsError(f"@secrets source {source.get('type', default)}: 'id' must be a string")
    if not isinstance(options, dict):
        raise SecretsError(f"@secrets source '{given}': 'options' must be a dict")
    return source.get("type") or default, given, options, source.get("role") or role


def _sanitized(key: str) -> str:
    return key.replace("-", "_").replace(".", "_").replace("/", "_")


async def _aws(
    secret_id: str, options: dict[str, Any], role: str | None, settings: SecretsSettings
) -> dict[str, str]:
    import aioboto3  # type: ignore[import-untyped]

    match = re.match(r"arn:aws:secretsmanager:([^:]+):", secret_id)
    region = (
        (match.group(1) if match else None)
        or options.get("region")
        or settings.aws_region
    )
    session = aioboto3.Session()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or os.environ.get("AWS_ENDPOINT_URL")
    credentials: dict[str, str] = {}
    role = role or settings.aws_role
    if role:
        sts_endpoint = os.environ.get("AWS_ENDPOINT_URL_STS") or endpoint
        async with session.client("sts", region_name=region, endpoint_url=sts_endpoint) as sts:
            assumed = await sts.assume_role(RoleArn=role, RoleSessionName="aflow-secrets")
        c = assumed["Credentials"]
        credentials = {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }
    async with session.client(
        "secretsmanager", region_name=region, endpoint_url=endpoint, **credentials
    ) as client:
        response = await client.get_secret_value(SecretId=secret_id)
    name = options.get("env_var_name") or response.get("Name") or secret_id
    if "SecretString" in response:
        text = response["SecretString"]
        if not options.get("json", True):
            return {_sanitized(name): text}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise SecretsError(
                f"secret '{secret_id}' is not JSON: pass options={{'json': False}} to set it as "
                "one variable"
            ) from None
        if not isinstance(value, dict):
            raise SecretsError(f"secret '{secret_id}' is JSON but not an object of name to value")
        return _unique(secret_id, {k: str(v) for k, v in value.items()})
    if "SecretBinary" in response:
        return {_sanitized(name): base64.b64encode(response["SecretBinary"]).decode()}
    raise SecretsError(f"secret '{secret_id}' has neither a string nor a binary value")


def _unique(secret_id: str, values: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        name = _sanitized(key)
        if name in out:
            raise SecretsError(f"secret '{secret_id}': two keys become the variable {name}")
        out[name] = value
    return out


def _local(secret_id: str) -> dict[str, str]:
    path = os.path.expanduser(secret_id)
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise SecretsError(f"local secret file {path}: {e.strerror}") from None
    except json.JSONDecodeError:
        raise SecretsError(f"local secret file {path} is not JSON") from None
    if not isinstance(value, dict):
        raise SecretsError(f"local secret file {path} must hold an object of name to value")
    return _unique(secret_id, {k: str(v) for k, v in value.items()})


async def fetch(
    kind: str,
    secret_id: str,
    options: dict[str, Any],
    role: str | None,
    settings: SecretsSettings | None = None,
) -> dict[str, str]:
    if kind == "aws-secrets-manager":
        return await _aws(secret_id, options, role, settings or SecretsSettings.from_env())
    if kind == "inline":
        return {str(k): v for k, v in options.get("env_vars", {}).items()}
    if kind == "local":
        return _local(secret_id)
    raise SecretsError(
        f"@secrets source '{secret_id}': no provider '{kind}' (known: aws-secrets-manager, inline, "
        "local)"
    )


def _check(secret_id: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        if not isinstance(value, str):
            raise SecretsError(f"secret '{secret_id}': the value of {name} is not a string")
        if not _ENV_NAME.fullmatch(name):
            raise SecretsError(f"secret '{secret_id}': '{name}' is not a valid variable name")
        if name.startswith(_DISALLOWED_PREFIXES):
            raise SecretsError(f"secret '{secret_id}': {name} would change aflow's own settings")


def secret_environment(settings: dict[str, Any], step: str) -> dict[str, str]:
    """Every variable the step's @secrets sets, checked: no clash between two secrets, and none
    with a variable already set unless allow_override=True."""
    import asyncio

    defaults = SecretsSettings.from_env()
    role = settings.get("role") or defaults.role
    sources = [parse_source(s, role, defaults) for s in settings.get("sources") or []]

    async def named(kind: str, secret_id: str, options: dict[str, Any], role: str | None) -> Any:
        try:
            return await fetch(kind, secret_id, options, role, defaults)
        except AflowException:
            raise
        except Exception as e:  # the provider's own error says why (never with the value)
            raise SecretsError(
                f"step '{step}': secret '{secret_id}' ({kind}): {type(e).__name__}: {e}"
            ) from None

    async def all_of() -> list[dict[str, str]]:
        return list(await asyncio.gather(*(named(*s) for s in sources)))

    found = asyncio.run(all_of())
    env: dict[str, str] = {}
    for (kind, secret_id, _, _), values in zip(sources, found, strict=True):
        _check(secret_id, values)
        for name in values:
            if name in env:
                raise SecretsError(f"step '{step}': two secrets set {name} ('{secret_id}' is one)")
            if name in os.environ and not settings.get("allow_override"):
                raise SecretsError(
                    f"step '{step}': secret '{secret_id}' ({kind}) would replace the variable "
                    f"{name}, already set: pass allow_override=True to let it"
                )
        env.update(values)
    return env
