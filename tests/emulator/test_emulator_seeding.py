"""Seeding the emulator's lines with device groups, service plans and custom-field values (issue
12, item 6): the option parser, how lines are handed out, and the command itself, whose lines
account / group / filter requests then match."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
from servers import HttpServer

from uws_adapter import CustomField, InputError, UwsClient, parse_callback, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.emulator.lines import Seed, generated_devices, parse_seed, seed_lines, seeds


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("fleet-a:10", "group", Seed("group", "fleet-a", 10)),
        ("fleet-a", "group", Seed("group", "fleet-a", None)),
        ("M2M Pro:3", "service_plan", Seed("service_plan", "M2M Pro", 3)),
        ("plan:v2", "service_plan", Seed("service_plan", "plan:v2", None)),
        ("customfield2=SuperVend:4", "custom_field", Seed("CustomField2", "SuperVend", 4)),
        ("CustomField1=a=b", "custom_field", Seed("CustomField1", "a=b", None)),
        ("fleet:\u00b2", "group", Seed("group", "fleet:\u00b2", None)),  # a digit int() refuses: the value's
    ],
    ids=[
        "group-with-count",
        "group-all",
        "plan-with-space",
        "colon-in-value",
        "custom-field",
        "equals-in-value",
        "superscript-in-value",
    ],
)
def test_seed_options_are_parsed(text: str, attribute: str, expected: Seed) -> None:
    assert parse_seed(text, attribute) == expected


@pytest.mark.parametrize(
    ("text", "attribute", "field"),
    [
        ("fleet:0", "group", "--group"),
        (":5", "group", "--group"),
        ("SuperVend:4", "custom_field", "--custom-field"),
        ("CustomField9=x", "custom_field", "--custom-field custom field name"),
        ("CustomField1=a<b", "custom_field", "--custom-field custom field CustomField1 value"),
        ("fleet:" + "9" * 5000, "group", "--group"),  # was a raw ValueError (int() of over 4,300 digits)
    ],
    ids=["zero-count", "no-name", "no-field-name", "unknown-field", "forbidden-character", "count-too-long"],
)
def test_bad_seed_options_name_the_option(text: str, attribute: str, field: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_seed(text, attribute)
    assert raised.value.field == field


def test_each_attribute_is_handed_out_from_the_first_line_on() -> None:
    lines = generated_devices(6)
    seed_lines(
        lines,
        seeds(
            groups=["a:2", "b:3"],
            service_plans=["Pro:1", "Basic"],
            custom_fields=["CustomField2=X:4", "CustomField1=Y:1"],
        ),
    )
    assert [line.group for line in lines] == ["a", "a", "b", "b", "b", None]
    assert [line.service_plan for line in lines] == ["Pro"] + ["Basic"] * 5
    assert [line.custom_fields for line in lines] == (
        [{"CustomField2": "X", "CustomField1": "Y"}] + [{"CustomField2": "X"}] * 3 + [{}] * 2
    )


def test_a_seed_over_the_lines_left_is_refused() -> None:
    with pytest.raises(InputError, match="wants 3 line"):
        seed_lines(generated_devices(4), seeds(groups=["a:2", "b:3"]))
    with pytest.raises(InputError) as raised:
        seed_lines(generated_devices(4), seeds(groups=["a", "b"]))  # "a" took every line
    assert raised.value.field == "--group"


def _suspended(client: UwsClient, callbacks: HttpServer, expected: int, **query: object) -> List[str]:
    """Suspend the lines ``query`` selects; the IMEIs the callbacks name (``expected`` of them)."""
    before = len(callbacks.bodies)
    assert client.suspend(select(account=DEFAULT_ACCOUNT, **query))  # type: ignore[arg-type]
    bodies = callbacks.wait_for(before + expected)[before:]
    return sorted(
        next(d.identifier for d in parse_callback(body).devices if d.kind.upper() == "IMEI") for body in bodies
    )


def _imeis(*numbers: int) -> List[str]:
    return [str(350000000000000 + n) for n in numbers]


def test_the_emulator_command_seeds_lines_that_queries_match(tmp_path: Path) -> None:
    callbacks = HttpServer(lambda body: (200, "text/plain", b"ok"))
    process: Optional[subprocess.Popen[str]] = None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "uws_adapter", "emulator", "--port", "0", "--devices", "8",
             "--listener", callbacks.url, "--group", "fleet-a:4", "--group", "fleet-b:2",
             "--service-plan", "M2M Pro:2", "--custom-field", "CustomField2=SuperVend:3"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "emulator: UWS at http://127.0.0.1:" in first, first
        base_url = first.split(" at ")[1].split(",")[0]
        client = UwsClient(base_url=base_url, username="uws-user", password="uws-password", timeout=(2.0, 5.0))
        assert _suspended(client, callbacks, 2, group="fleet-b") == _imeis(4, 5)
        assert _suspended(client, callbacks, 2, group="fleet-a", service_plan="M2M Pro") == _imeis(0, 1)
        fields = [CustomField("CustomField2", "supervend")]  # matched case-insensitively
        # Lines 0 and 1 are suspended already: their callbacks say so, but they are matched all the same.
        assert _suspended(client, callbacks, 3, group="fleet-a", custom_fields=fields) == _imeis(0, 1, 2)
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=10)
        callbacks.close()
