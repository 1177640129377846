"""Strict validation of what the Kubernetes emulator is sent: the object against the Kubernetes
OpenAPI schema of the emulated version (the strict JSON schemas the `kubernetes-validate` package
ships: unknown fields, wrong types, missing required fields are refused), then the documented
limits a schema cannot say (see tests/fakes/README.md for each limit and its source)."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import referencing
from kubernetes_validate.utils import all_versions, major_minor, schema_contents

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # the API server's request body limit
MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default --max-request-bytes: one object, stored
MAX_ANNOTATION_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB
MAX_INDEXED_COMPLETIONS = 100_000  # completions / parallelism of an Indexed Job (with per-index backoff)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


@functools.lru_cache(maxsize=8)
def _validator(version: str, kind: str, api: str) -> jsonschema.protocols.Validator:
    known = [v for v in all_versions() if major_minor(v) <= major_minor(version)]
    schema_dir = f"kubernetes-json-schema/v{known[-1]}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api)
    schema = schema_contents(f"{schema_dir}/{kind.lower()}-{group}.json", version)
    definitions = schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = referencing.Registry().with_resources(
        [
            ("", referencing.Resource.from_contents(schema)),
            ("_definitions.json", referencing.Resource.from_contents(definitions)),
        ]
    )
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "."


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """The object's departures from the version's strict schema, as `.path: what` lines."""
    validator = _validator(version, obj["kind"], obj["apiVersion"])
    out = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        what = error.message
        if error.validator == "additionalProperties":
            what = f"unknown field ({error.message})"
        out.append(f"{_path(error)}: {what}")
    return out


def limit_errors(obj: dict[str, Any], raw_size: int) -> list[str]:
    """The documented limits beyond the schema that a Job breaks."""
    out = []
    if raw_size > MAX_OBJECT_BYTES:
        out.append(f"the object is {raw_size} bytes: etcd stores at most {MAX_OBJECT_BYTES}")
    for where, meta in (
        ("metadata", obj.get("metadata") or {}),
        (
            "spec.template.metadata",
            ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {},
        ),
    ):
        notes = meta.get("annotations") or {}
        size = sum(len(k) + len(str(v)) for k, v in notes.items())
        if size > MAX_ANNOTATION_BYTES:
            out.append(f"{where}.annotations: Too long: must have at most {MAX_ANNOTATION_BYTES} bytes")
    spec = obj.get("spec") or {}
    if spec.get("completionMode") == "Indexed":
        for key in ("completions", "parallelism"):
            if isinstance(spec.get(key), int) and spec[key] > MAX_INDEXED_COMPLETIONS:
                out.append(f"spec.{key}: Invalid value: {spec[key]}: must be less than or equal to "
                           f"{MAX_INDEXED_COMPLETIONS} when completion mode is Indexed")  # fmt: skip
    pod = (spec.get("template") or {}).get("spec") or {}
    for i, c in enumerate([*(pod.get("initContainers") or []), *(pod.get("containers") or [])]):
        for j, env in enumerate(c.get("env") or []):
            name = env.get("name", "")
            if not _ENV_NAME.fullmatch(str(name)):
                out.append(f'spec.template.spec.containers[{i}].env[{j}].name: Invalid value: "{name}": '
                           "a valid environment variable name must consist of alphabetic characters, "
                           "digits, '_', '-', or '.', and must not start with a digit")  # fmt: skip
    return out


def size_of(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":")).encode())
