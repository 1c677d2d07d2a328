"""The HTML builder escapes every value it is given; only its own markup passes through."""

from __future__ import annotations

import pytest

from cairnflow.ui.html import Markup, age_text, join, json_block, json_text, raw, tag, time_text

PAYLOAD = "<script>alert(1)</script>\"'&"


def test_text_children_are_escaped() -> None:
    out = tag("p", PAYLOAD)
    assert out == "<p>&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;</p>"


def test_attribute_values_are_escaped_and_cannot_break_out() -> None:
    out = tag("a", "x", href=PAYLOAD, title='" onmouseover="alert(1)')
    assert '" onmouseover="' not in out
    assert 'title="&quot; onmouseover=&quot;alert(1)"' in out
    assert "<script>" not in out


def test_markup_passes_through_but_str_subclasses_of_data_do_not() -> None:
    inner = tag("b", PAYLOAD)
    out = tag("p", inner, PAYLOAD)
    assert out.startswith("<p><b>&lt;script&gt;")
    assert out.count("&lt;script&gt;") == 2
    assert isinstance(out, Markup)


def test_attribute_forms() -> None:
    assert (
        tag("input", type="checkbox", checked=True, disabled=False, title=None)
        == '<input type="checkbox" checked>'
    )
    assert tag("td", class_="id", data_thread="t") == '<td class="id" data-thread="t"></td>'
    assert tag("option", "x", name="n", value="v") == '<option name="n" value="v">x</option>'


def test_nested_iterables_and_none_children() -> None:
    assert join("a", None, ["b", [raw("<i>c</i>")]], 3) == "ab<i>c</i>3"


def test_json_block_escapes_values_and_keys() -> None:
    out = json_block({PAYLOAD: [PAYLOAD, b"raw"]})
    assert "<script>" not in out
    assert out.startswith('<pre class="value">')
    assert "&lt;script&gt;" in out


def test_json_text_cuts_long_values_and_shows_unknown_objects_by_repr() -> None:
    text = json_text("x" * 100, limit=20)
    assert text.endswith("(82 more characters)")

    class Thing:
        def __repr__(self) -> str:
            return "Thing()"

    assert json_text({"t": Thing()}) == '{\n  "t": "Thing()"\n}'
    circular: list[object] = []
    circular.append(circular)
    assert json_text(circular) == "[[...]]"


@pytest.mark.parametrize(
    ("delta", "text"), [(5, "5s"), (61, "1m"), (3 * 3600 + 5, "3h"), (2 * 86400 + 1, "2d"), (-10, "0s")]
)
def test_age_text(delta: float, text: str) -> None:
    assert age_text(1_000_000.0 - delta, 1_000_000.0) == text


def test_time_text() -> None:
    assert time_text(0.0) == "1970-01-01 00:00:00 UTC"
    assert time_text(None) == "—"
    assert age_text(float("nan"), 0.0) == "—"
