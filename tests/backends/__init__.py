"""Backend-specific test suites (beyond the shared contract)."""
