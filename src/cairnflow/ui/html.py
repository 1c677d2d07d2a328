"""Building HTML so that no stored value can ever become markup.

Every page is built from :func:`tag` calls. A child or attribute value is
escaped unless it is :class:`Markup` (which only :func:`tag`, :func:`join`
and :func:`raw` make), so a thread id, a workflow name or a value holding
``<script>`` shows as text. Nothing here reads the store.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Iterable
from typing import Any, TypeAlias

__all__ = ["Child", "Markup", "age_text", "esc", "join", "json_block", "raw", "tag", "time_text"]

#: Longest JSON text shown for one value before it is cut (the page must stay usable).
VALUE_LIMIT = 20_000

_VOID = frozenset({"br", "hr", "input", "meta", "link", "img"})


class Markup(str):
    """Text that is already HTML. Never build one from a stored value: use :func:`tag`."""

    __slots__ = ()


Child: TypeAlias = "Markup | str | int | float | Iterable[Child] | None"


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def raw(text: str) -> Markup:
    """Mark constant, hand-written HTML (never data) as markup."""
    return Markup(text)


def _render(child: Child, out: list[str]) -> None:
    if child is None or child is False:
        return
    if isinstance(child, Markup):
        out.append(str(child))
    elif isinstance(child, (str, int, float)):
        out.append(esc(child))
    else:
        for item in child:
            _render(item, out)


def join(*children: Child) -> Markup:
    """Children rendered one after another (strings escaped)."""
    out: list[str] = []
    _render(children, out)
    return Markup("".join(out))


def tag(element: str, /, *children: Child, **attrs: object) -> Markup:
    """``<element attrs>children</element>``: strings escaped, :class:`Markup` kept.

    ``class_`` stands for ``class``, ``data_x`` for ``data-x``; ``None`` and ``False``
    attributes are left out, ``True`` gives a bare one (``open``, ``checked``).
    """
    parts = [element]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{esc(value)}"')
    start = "<" + " ".join(parts) + ">"
    if element in _VOID:
        return Markup(start)
    return Markup(start + join(*children) + f"</{element}>")


def json_text(value: Any, *, limit: int = VALUE_LIMIT) -> str:
    """A value as indented JSON text (non-JSON objects by ``repr``), cut at ``limit`` characters."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # e.g. circular containers
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return text


def json_block(value: Any) -> Markup:
    """A value shown as escaped, indented JSON in a ``<pre>``."""
    return tag("pre", json_text(value), class_="value")


def time_text(epoch: float | None) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if epoch is None or not math.isfinite(epoch):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def age_text(epoch: float | None, now: float) -> str:
    """How long ago ``epoch`` was, roughly (``42s``, ``5m``, ``3h``, ``2d``)."""
    if epoch is None or not math.isfinite(epoch):
        return "—"
    seconds = max(0.0, now - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
