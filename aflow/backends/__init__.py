"""Backends: where a task runs (local processes now). Each knows only the protocol in base.py."""
