"""What the "default" card shows about its task: identity and timing, parameters, artifacts (with
the previews aflow ui shows) and the flow's DAG with this task's step highlighted.

Built in the task process when the task ends, from what the runtime already holds; artifacts the
task inherited but never read are loaded only when small (`LOAD_LIMIT`), a larger one is listed
with its size. Each part is built on its own: one that fails becomes an error block, not a failed card.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aflow.cards.components import Error
from aflow.stores import artifacts as art
from aflow.stores.base import BlockingObjectStore
from aflow.stores.records import TaskRecord

LOAD_LIMIT = 1 << 20


def _text(value: Any) -> dict[str, Any]:
    return {"type": "text", "text": str(value)}


def _section(title: str, contents: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "section", "title": title, "contents": contents}


def _guarded(title: str, build: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    try:
        return _section(title, build())
    except Exception as e:
        return _section(title, [Error(e, f"{title} could not be shown").to_data()])


def task_facts(spec: Any, record: TaskRecord | None, started: float) -> dict[str, Any]:
    items = [
        ["Flow", spec.flow_name],
        ["Run", spec.run_id],
        ["Step", spec.step],
        ["Task", spec.task_id],
        ["Attempt", str(spec.attempt)],
    ]
    if spec.foreach_stack:
        items.append(["Foreach", ", ".join(f"{f[0]}[{f[1]} of {f[2]}]" for f in spec.foreach_stack)])
    timing: dict[str, Any] = {"started": started}
    if record is not None and record.finished_at:
        timing["finished"] = record.finished_at
    return {"type": "facts", "items": items, "timing": timing}


def _value_of(
    name: str, flow: Any, refs: dict[str, Any], store: BlockingObjectStore, limit: int
) -> tuple[bool, Any]:
    if name in flow.__dict__:
        return True, flow.__dict__[name]
    ref = refs.get(name)
    if ref is None:
        return False, None
    if "v" not in ref and int(ref.get("s", 0)) > limit:
        return False, None
    return True, art.deserialize(art.load_ref_blob(store, flow.name, ref))


def _ref_size(ref: dict[str, Any]) -> int:
    return int(ref["s"]) if "k" in ref else len(ref["v"])


def _artifact_rows(
    names: list[str], flow: Any, refs: dict[str, Any], store: BlockingObjectStore, limit: int
) -> list[list[dict[str, Any]]]:
    from aflow.ui.markup import size
    from aflow.ui.preview import describe

    rows = []
    for name in names:
        try:
            known, value = _value_of(name, flow, refs, store, limit)
            if known:
                shown = describe(value)
                kind, text = shown.type, shown.text
            else:
                kind, text = "", f"not loaded ({size(_ref_size(refs[name]))})"
        except Exception as e:  # a class the card cannot import, a broken pickle
            kind, text = "", f"cannot be loaded: {type(e).__name__}: {e}"
        where = size(_ref_size(refs[name])) if name in refs else ""
        rows.append([_text(name), _text(kind), _text(where), {"type": "pre", "text": text}])
    return rows


def default_sections(
    spec: Any, flow: Any, record: TaskRecord, store: BlockingObjectStore, graph: dict[str, Any],
    max_artifact_size: int | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The default card's own parts, after the components the step appended. Inherited artifacts
    larger than `max_artifact_size` (the card's option; 1 MiB by default) are not loaded."""
    limit = int(max_artifact_size) if max_artifact_size is not None else LOAD_LIMIT
    refs = record.artifacts
    params = [n for n in spec.param_names if n in refs]
    others = sorted(n for n in refs if n not in set(spec.param_names) and not n.startswith("_"))
    headers = ["Name", "Type", "Size", "Preview"]

    def table(names: list[str]) -> list[dict[str, Any]]:
        if not names:
            return [_text("None.")]
        rows = _artifact_rows(names, flow, refs, store, limit)
        return [{"type": "table", "headers": headers, "rows": rows}]

    def dag() -> list[dict[str, Any]]:
        from aflow.ui.dag import columns

        keep = ("type", "next", "foreach")
        steps = {name: {k: info.get(k) for k in keep} for name, info in graph.items()}
        return [{"type": "dag", "columns": columns(steps), "steps": steps, "current": spec.step}]

    return [
        _guarded("Parameters", lambda: table(params)),
        _guarded("Artifacts", lambda: table(others)),
        _guarded("DAG", dag),
    ]
