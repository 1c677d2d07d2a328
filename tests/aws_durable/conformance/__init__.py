"""The AWS durable-execution conformance suite, judged by its own validation pipeline (see harness.py)."""
