"""The compute decorator the remote example flows use: @batch, or @kubernetes when the test sets
AFLOW_TEST_COMPUTE=kubernetes, so the same flows run on both backends."""

import os

import aflow


def remote(**settings):
    return getattr(aflow, os.environ.get("AFLOW_TEST_COMPUTE", "batch"))(**settings)
