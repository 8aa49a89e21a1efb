"""errors.shown: how an error quotes a value given to us, short whatever it is (an integer Python
refuses to write was a raw ValueError in place of the error that quoted it)."""

from __future__ import annotations

import pytest

from uws_adapter.errors import SHOWN_CHARACTERS, InputError, shown
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.waits import check_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (-(2**63), str(-(2**63))),
        (True, "True"),
        (2**200, "an integer of 201 bits"),
        (10**5000, "an integer of 16,610 bits"),
        ("soon", "'soon'"),
        ("x" * 100, repr("x" * SHOWN_CHARACTERS) + "..."),
        (list(range(100)), repr(list(range(100)))[:SHOWN_CHARACTERS] + "..."),
        (None, "None"),
        ([1, 2], "[1, 2]"),
        ((10**5000, 1), "a tuple holding an integer too long to write"),
    ],
    ids=[
        "int",
        "bigint-min",
        "bool",
        "200-bits",
        "5000-digits",
        "text",
        "long-text",
        "long-list",
        "none",
        "list",
        "tuple-of-5000-digits",
    ],
)
def test_a_value_is_quoted_short(value: object, expected: str) -> None:
    assert shown(value) == expected
    assert len(shown(value)) <= SHOWN_CHARACTERS + 5  # quotes and '...'


@pytest.mark.parametrize("value", [10**5000, -(10**5000), 2**70], ids=["5000-digits", "negative", "70-bits"])
def test_a_wait_of_an_integer_past_writing_is_refused_by_name(value: int) -> None:
    with pytest.raises(InputError, match=r"^timeout: an integer of [\d,]+ bits|^timeout: .* longer than a year"):
        check_seconds("timeout", value, "10")


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"timeout": (10**5000, 1)}, "timeout"),
        ({"timeout": (1, float("nan"))}, "timeout"),
        ({"connect_retries": 10**5000}, "connect_retries"),
        ({"max_answer_bytes": -(10**5000)}, "max_answer_bytes"),
    ],
    ids=["timeout-5000-digits", "timeout-nan", "retries-5000-digits", "answer-cap-5000-digits"],
)
def test_send_options_past_writing_are_refused_by_name(given: dict, field: str) -> None:  # type: ignore[type-arg]
    # Each refusal quoted its value with repr, a raw ValueError for an integer past 4,300 digits.
    with pytest.raises(InputError) as refused:
        SendOptions(**given)
    assert refused.value.field == field
