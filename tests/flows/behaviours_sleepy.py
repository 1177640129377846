"""SleepyFlow as a file of its own, for `aflow run` (one flow per file)."""

from behaviours import SleepyFlow  # noqa: F401
