#!/usr/bin/env bash
# Check an AWS Batch set-up for aflow end to end, on your own account: credentials, the job queue,
# the datastore, a one-task run, a small foreach, the task's output, and cancelling.
#
#   export AFLOW_DATASTORE_SYSROOT_S3=s3://my-bucket/aflow AFLOW_BATCH_JOB_QUEUE=my-queue
#   export AFLOW_BATCH_IAM_ROLE=arn:aws:iam::123456789012:role/aflow-task   # the job role
#   scripts/smoke-remote.sh
#
# Needs the aws CLI and aflow (with the aws extra) on PATH. It submits a few small jobs (1 vCPU,
# 1 GiB), writes a few objects under the datastore root, and leaves no job running. Each failing
# check says what to fix. The IAM policy aflow needs is in the README ("Remote steps").
set -uo pipefail

fail() { echo "FAIL: $1" >&2; echo "  fix: $2" >&2; exit 1; }
ok() { echo "ok:   $1"; }

command -v aws >/dev/null || fail "no aws CLI" "install it (https://aws.amazon.com/cli/)"
command -v aflow >/dev/null || fail "no aflow command" "pip install 'aflow-engine[aws]'"
: "${AFLOW_DATASTORE_SYSROOT_S3:?set AFLOW_DATASTORE_SYSROOT_S3=s3://bucket/prefix}"
: "${AFLOW_BATCH_JOB_QUEUE:?set AFLOW_BATCH_JOB_QUEUE to your job queue}"
export AFLOW_DEFAULT_DATASTORE=s3

who=$(aws sts get-caller-identity --query Arn --output text 2>&1) \
  || fail "no usable AWS credentials: $who" "aws configure / aws sso login, or set AWS_PROFILE"
ok "credentials: $who"

state=$(aws batch describe-job-queues --job-queues "$AFLOW_BATCH_JOB_QUEUE" \
  --query 'jobQueues[0].[state,status]' --output text 2>&1) \
  || fail "cannot describe the job queue: $state" "allow batch:DescribeJobQueues, check the Region"
[ "$state" = "ENABLED	VALID" ] \
  || fail "job queue $AFLOW_BATCH_JOB_QUEUE is '$state'" "create it, or enable it and its compute environment"
ok "job queue $AFLOW_BATCH_JOB_QUEUE is ENABLED and VALID"

envs=$(aws batch describe-job-queues --job-queues "$AFLOW_BATCH_JOB_QUEUE" \
  --query 'jobQueues[0].computeEnvironmentOrder[].computeEnvironment' --output text)
# shellcheck disable=SC2086  # one argument per environment
kinds=$(aws batch describe-compute-environments --compute-environments $envs \
  --query 'computeEnvironments[].computeResources.type' --output text 2>&1) \
  || fail "cannot describe the queue's compute environments: $kinds" \
    "allow batch:DescribeComputeEnvironments (aflow asks it to tell EC2 from Fargate)"
case "$kinds" in
  *FARGATE*)
    [ -n "${AFLOW_BATCH_EXECUTION_ROLE:-}" ] \
      || fail "job queue $AFLOW_BATCH_JOB_QUEUE runs on Fargate, and no execution role is set" \
        "set AFLOW_BATCH_EXECUTION_ROLE to a role ECS may use to pull images and write logs"
    ok "job queue $AFLOW_BATCH_JOB_QUEUE runs on Fargate ($kinds); execution role set" ;;
  *) ok "job queue $AFLOW_BATCH_JOB_QUEUE runs on EC2 ($kinds)" ;;
esac

if [ -z "${AFLOW_BATCH_IAM_ROLE:-}" ]; then
  echo "warn: no AFLOW_BATCH_IAM_ROLE: containers get no credentials of their own for the datastore"
fi

probe="${AFLOW_DATASTORE_SYSROOT_S3%/}/aflow-smoke-$$"
echo smoke | aws s3 cp - "$probe" >/dev/null 2>&1 \
  || fail "cannot write $probe" "allow s3:PutObject on the datastore prefix"
aws s3 cp "$probe" - >/dev/null 2>&1 || fail "cannot read $probe" "allow s3:GetObject"
aws s3 rm "$probe" >/dev/null 2>&1
ok "datastore $AFLOW_DATASTORE_SYSROOT_S3 is readable and writable"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/smoke_flow.py" <<'EOF'
from aflow import FlowSpec, Parameter, batch, resources, step


class SmokeFlow(FlowSpec):
    width = Parameter("width", default=1)
    sleep = Parameter("sleep", default=0)

    @step
    def start(self):
        self.items = list(range(int(self.width)))
        self.next(self.work, foreach="items")

    @resources(cpu=1, memory=1024)
    @batch
    @step
    def work(self):
        import time
        time.sleep(float(self.sleep))
        print(f"smoke item {self.input} ran on AWS Batch")
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    SmokeFlow()
EOF

run_flow() {  # name, args...
  local name=$1; shift
  if ! aflow run "$work/smoke_flow.py" "$@" >"$work/$name.out" 2>&1; then
    tail -30 "$work/$name.out" >&2
    fail "the $name run failed (its output is above)" \
      "read the task's error: image pull (the image must have python3), job role (S3 access), queue capacity"
  fi
}

run_flow one-task --width 1
ok "a one-task run went to AWS Batch and back"
run_flow foreach --width 3
grep -q "smoke item 2 ran on AWS Batch" "$work/foreach.out" \
  || fail "the foreach ran but its output did not come back" "allow logs:GetLogEvents; check the datastore"
ok "a 3-way foreach ran as one array job and its output came back"

aflow run "$work/smoke_flow.py" --width 2 --sleep 600 >"$work/cancel.out" 2>&1 &
pid=$!
for _ in $(seq 120); do grep -q "submitted" "$work/cancel.out" && break; sleep 2; done
grep -q "submitted" "$work/cancel.out" || { kill -INT "$pid"; fail "no job submitted in 4 minutes" "see $work/cancel.out"; }
kill -INT "$pid"
wait "$pid" 2>/dev/null
job=$(grep -o "job [0-9a-f-]\{36\}" "$work/cancel.out" | head -1 | cut -d' ' -f2)
for _ in $(seq 60); do  # a terminated job takes a little while to show FAILED
  status=$(aws batch describe-jobs --jobs "$job" --query 'jobs[0].status' --output text)
  case "$status" in FAILED|SUCCEEDED) break ;; esac
  sleep 5
done
case "$status" in
  FAILED|SUCCEEDED) ok "cancelling stopped job $job ($status)" ;;
  *) fail "job $job is still $status 5 minutes after cancelling" "allow batch:TerminateJob" ;;
esac
echo "all checks passed"
