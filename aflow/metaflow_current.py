"""`from aflow.metaflow_current import current`: the module path Metaflow flows import `current` from.

Nothing of its own: the same `current` as `aflow.current`.
"""

from aflow.current import Current, current

__all__ = ["Current", "current"]
