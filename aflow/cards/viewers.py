"""Card components that show text as code: `PythonCode`, `JSONViewer`, `YAMLViewer`."""

from __future__ import annotations

from typing import Any

from aflow.cards.components import Component


class PythonCode(Component):
    """Source code: a function's (read with inspect) or a string."""

    kind = "code"

    def __init__(self, code_func: Any = None, code_string: str | None = None) -> None:
        super().__init__()
        self.code_func, self.code_string = code_func, code_string

    def data(self) -> dict[str, Any]:
        if self.code_string is not None:
            return {"text": str(self.code_string)}
        import inspect
        import textwrap

        return {"text": textwrap.dedent(inspect.getsource(self.code_func))}


class JSONViewer(Component):
    """A value as indented JSON."""

    kind = "code"

    def __init__(self, data: Any, **options: Any) -> None:
        super().__init__()
        self.value = data

    def update(self, data: Any) -> None:
        self.value = data

    def data(self) -> dict[str, Any]:
        import json

        return {"text": json.dumps(self.value, indent=2, default=str)}


class YAMLViewer(JSONViewer):
    """A value as YAML (as JSON when PyYAML is not installed)."""

    def data(self) -> dict[str, Any]:
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            return super().data()
        return {"text": yaml.safe_dump(self.value, sort_keys=False, default_flow_style=False)}
