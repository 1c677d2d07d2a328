"""Needs the conformance package (scripts/setup.sh installs it: it asks for Python 3.14, runs on 3.11)."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("aws_durable_execution_conformance_tests") is None:
    collect_ignore_glob = ["test_*.py"]
