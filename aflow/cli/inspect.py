"""Inspection commands: `list runs`, `show`, `logs` (being built)."""

from __future__ import annotations
