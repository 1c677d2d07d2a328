"""Acceptance tests of the core: crash recovery, concurrent resume, request counts, imports, wheel."""
