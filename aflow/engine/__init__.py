"""The engine: the scheduler that walks a flow's DAG, the runner that starts runs, the task runtime."""
