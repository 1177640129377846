"""What this aflow is and where it lives: its version and the folder its package is imported from.

Modules that need either read them here rather than from the `aflow` package itself, whose
`__init__` imports the public API (and so nearly everything).
"""

from __future__ import annotations

from pathlib import Path

VERSION = "0.1.0"

# The `aflow` package folder (the one holding this file), resolved through links.
PACKAGE_DIR = Path(__file__).resolve().parent
