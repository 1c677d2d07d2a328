"""Tests of the ``cairnflow`` command and :mod:`cairnflow.ops` (issue 11)."""
