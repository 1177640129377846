"""Emulated cloud control planes the remote backends are tested against (see batch_server.py)."""
