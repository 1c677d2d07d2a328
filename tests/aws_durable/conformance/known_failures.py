"""Requirements that do not pass yet, each with the reason (the slow test checks every entry still fails)."""

from __future__ import annotations

KNOWN_FAILURES: dict[str, str] = {}
