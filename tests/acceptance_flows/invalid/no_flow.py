from aflow import FlowSpec, step

x = 1
