"""Which handler answers which conformance requirement, and which functions ``context.invoke`` can call.

Handler modules (``handlers/<suite>.py``) import only this module::

    @requirement("1-1")
    @durable_execution
    def step_basic(event, context): ...

    @function("invoke-echo")      # a target of context.invoke("invoke-echo", ...)
    @durable_execution
    def echo(event, context): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["FUNCTIONS", "REQUIREMENTS", "function", "requirement"]

Handler = Callable[[Any, Any], Any]
H = TypeVar("H", bound=Handler)

#: requirement id (the YAML's file stem, e.g. "1-1") -> the handler deployed for it
REQUIREMENTS: dict[str, Handler] = {}
#: function name -> handler, for context.invoke targets
FUNCTIONS: dict[str, Handler] = {}


def requirement(*ids: str) -> Callable[[H], H]:
    """Register the decorated handler as the function of requirement(s) ``ids``."""

    def register(handler: H) -> H:
        for rid in ids:
            if rid in REQUIREMENTS and REQUIREMENTS[rid] is not handler:
                raise ValueError(f"requirement {rid} already has a handler ({REQUIREMENTS[rid].__name__})")
            REQUIREMENTS[rid] = handler
        return handler

    return register


def function(name: str) -> Callable[[H], H]:
    """Register the decorated handler as function ``name`` (a ``context.invoke`` target)."""

    def register(handler: H) -> H:
        if name in FUNCTIONS and FUNCTIONS[name] is not handler:
            raise ValueError(f"function {name!r} already registered ({FUNCTIONS[name].__name__})")
        FUNCTIONS[name] = handler
        return handler

    return register
