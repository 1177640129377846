"""Requests checked against botocore's own service models, as the AWS front end checks them.

`problems(service, operation, body)` lists what is wrong with a request body (JSON as sent on the
wire) for an operation of `batch` or `logs`: unknown members, missing required members, wrong
types, values outside an enum, lengths and numbers outside the model's min/max. botocore's client
checks some of this before sending (required members, types, minimums) but never maxima or enums;
the service does, so the emulators do too.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape


@functools.cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def operation(service: str, name: str) -> OperationModel:
    return _model(service).operation_model(name)


@functools.cache
def fargate_pairs() -> dict[float, frozenset[int]]:
    """Fargate's supported vCPU -> memory (MiB) pairs, read from the documentation of
    ResourceRequirement.value in botocore's `batch` model (the API reference's table)."""
    doc = _model("batch").shape_for("ResourceRequirement").members["value"].documentation
    text = re.sub(r"<[^>]+>", " ", doc)
    vcpu = text[text.index('type="VCPU"') :]
    found = re.findall(
        r"value\s*=\s*([\d.]+)\s+MEMORY\s*=\s*([\d,\sor]+?)(?=\s+value|\s*$)", vcpu
    )
    pairs = {float(v): frozenset(int(m) for m in re.findall(r"\d+", mem)) for v, mem in found}
    assert len(pairs) >= 7, f"the model's Fargate table did not parse: {pairs}"
    return pairs


def problems(service: str, name: str, body: Any) -> list[str]:
    shape = operation(service, name).input_shape
    out: list[str] = []
    if shape is not None:
        _check(shape, body, name, out)
    return out


def _check(shape: Shape, value: Any, where: str, out: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        for required in shape.required_members:
            if required not in value:
                out.append(f"{where}: missing required member {required!r}")
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                out.append(f"{where}: unknown member {key!r}")
            elif item is not None:
                _check(member, item, f"{where}.{key}", out)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            out.append(f"{where}: expected a list, got {type(value).__name__}")
            return
        _bounds(len(value), meta, f"{where} (items)", out)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{where}[{i}]", out)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            out.append(f"{where}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(shape.key, key, f"{where} key", out)
            _check(shape.value, item, f"{where}[{key!r}]", out)
    elif kind == "string":
        if not isinstance(value, str):
            out.append(f"{where}: expected a string, got {type(value).__name__}")
            return
        if shape.enum and value not in shape.enum:
            out.append(f"{where}: {value!r} is not one of {', '.join(shape.enum)}")
        _bounds(len(value), meta, f"{where} (length)", out)
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{where}: expected an integer, got {type(value).__name__}")
            return
        _bounds(value, meta, where, out)
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(f"{where}: expected a number, got {type(value).__name__}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{where}: expected a boolean, got {type(value).__name__}")
    elif kind == "timestamp" and not isinstance(value, (int, float, str)):
        out.append(f"{where}: expected a timestamp, got {type(value).__name__}")


def _bounds(number: int, meta: dict[str, Any], where: str, out: list[str]) -> None:
    if "min" in meta and number < meta["min"]:
        out.append(f"{where}: {number} is under the minimum {meta['min']}")
    if "max" in meta and number > meta["max"]:
        out.append(f"{where}: {number} is over the maximum {meta['max']}")
