"""Reliability suite (issue 9): faults, crash points and hostile input on every backend."""
