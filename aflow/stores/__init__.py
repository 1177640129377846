"""Datastores: the object-store protocol, its implementations, and the artifact and record formats."""
