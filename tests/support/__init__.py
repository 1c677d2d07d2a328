"""Test helpers shared by the backend suites (fault-injection proxy, ...)."""
