"""The one hardened path for untrusted JSON: what it refuses, and that it says why."""

from __future__ import annotations

import pytest

from uws_adapter.errors import DocumentError
from uws_adapter.jsonsafe import loads_untrusted


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": NaN}', "not a JSON value"),
        ('{"a": Infinity}', "not a JSON value"),
        ('{"a": 1e999}', "out of range"),
        ('{"a": -1e999}', "out of range"),
        ('{"a": ' + "9" * 19 + "}", "digits"),
        ("[" * 5_000 + "]" * 5_000, "nested deeper"),
    ],
    ids=["nan", "infinity", "1e999", "minus-1e999", "integer-19-digits", "nested-5000"],
)
def test_what_is_not_a_finite_json_value_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(DocumentError) as caught:
        loads_untrusted(text, what="body")
    assert str(caught.value).startswith("body: ")
    assert reason in str(caught.value)


def test_finite_numbers_are_read() -> None:
    assert loads_untrusted('{"a": 1.5e3, "b": -2, "c": 0.1}') == {"a": 1500.0, "b": -2, "c": 0.1}
