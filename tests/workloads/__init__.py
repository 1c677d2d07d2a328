"""Workflows run as child processes by the core tests (python -m tests.workloads.<name>)."""
