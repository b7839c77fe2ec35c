"""Temporal workflows that orchestrate Waybill's long-running processes.

One folder per process (`workflow.py` side-effect free, `activities.py` calling the
services' HTTP APIs); `worker.py` hosts them and `bridge.py` turns NATS events into
workflow starts and signals.
"""
