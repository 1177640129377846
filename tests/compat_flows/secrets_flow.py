"""@secrets from AWS Secrets Manager (moto, over the wire), inline and a local file (test_compat.py).

The flow stores only digests of what it saw: a secret's value must appear nowhere in the store.
"""

import hashlib
import os

from aflow import FlowSpec, secrets, step

INLINE = "Pizza is a vegetable."
NAMES = ("DB_USER", "DB_PASSWORD", "API_TOKEN", "secret_1", "LOCAL_KEY")


def digest(value):
    return hashlib.sha256(value.encode()).hexdigest() if value is not None else None


class SecretsFlow(FlowSpec):
    @secrets(
        sources=[
            "db-creds",
            {
                "type": "aws-secrets-manager",
                "id": "plain-token",
                "options": {"json": False, "env_var_name": "API_TOKEN"},
                "role": "arn:aws:iam::123456789012:role/secret-reader",
            },
            {"type": "inline", "id": "1", "options": {"env_vars": {"secret_1": INLINE}}},
            {"type": "local", "id": os.environ.get("AFLOW_TEST_SECRET_FILE", "missing.json")},
        ]
    )
    @step
    def start(self):
        self.seen = {name: digest(os.environ.get(name)) for name in NAMES}
        self.next(self.end)

    @step
    def end(self):
        self.visible_later = [name for name in NAMES if name in os.environ]


class MissingSecretFlow(FlowSpec):
    @secrets(sources=["no-such-secret"])
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
