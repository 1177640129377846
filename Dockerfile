# An image for @batch / @kubernetes steps with aflow and its requirements already installed: its
# containers install nothing at start (no wheelhouse fetched, no PyPI), and it can read the
# datastore with its own credentials when a presigned URL has expired. Build from the checkout:
#   docker build -t my-registry/aflow:0.1 --build-arg EXTRAS=aws .
# then run with AFLOW_BATCH_IMAGE / AFLOW_KUBERNETES_IMAGE (or image=) set to it and
# AFLOW_WHEELHOUSE=0 (the scheduler then gathers no wheels). Add your steps' own libraries below.
ARG PYTHON=3.11
FROM python:${PYTHON}-slim
# aws (S3), azure, gcp: the datastore's extra.
ARG EXTRAS=aws
COPY pyproject.toml README.md /src/aflow/
COPY aflow /src/aflow/aflow
RUN pip install --no-cache-dir "/src/aflow[${EXTRAS}]" && rm -rf /src/aflow
# A non-root user, as Kubernetes' `restricted` Pod Security level wants (uid 1000 is aflow's default).
RUN useradd --uid 1000 --create-home aflow
USER 1000
WORKDIR /home/aflow
