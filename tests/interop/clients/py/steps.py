"""What the Python SOAP clients of the interop suite share: their arguments, and the JSON record of
their steps that tests/interop/interop_harness.py reads (the same shape as the PHP, Java, Node and
Perl clients print). Standard library only: each client runs in its own process."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

#: One device: each of its identifiers, as (kind, identifier).
Device = List[Tuple[str, str]]


@dataclass(frozen=True)
class Arguments:
    session_wsdl: str
    carrier_wsdl: str
    username: str
    password: str
    account: str
    group: str
    field: str
    value: str
    devices: List[Device]


def parse_device(text: str) -> Device:
    """``KIND:ID[+KIND:ID...]``: one device named by each of its identifiers."""
    return [(pair.partition(":")[0], pair.partition(":")[2]) for pair in text.split("+")]


def arguments(argv: Sequence[str]) -> Arguments:
    """SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE..."""
    if len(argv) < 9:
        sys.exit(f"usage: {sys.argv[0]} SESSION_WSDL CARRIER_WSDL USER PASSWORD ACCOUNT GROUP FIELD VALUE DEVICE...")
    return Arguments(*argv[:8], devices=[parse_device(text) for text in argv[8:]])  # type: ignore[misc]


class Steps:
    """The record of one run: each step ok (with its RequestId) or not (with the error)."""

    def __init__(self, fault_type: Type[BaseException], fault_code: Callable[[Any], Tuple[str, str]]) -> None:
        self.fault_type = fault_type
        self.fault_code = fault_code  # (faultcode, faultstring) of a native fault
        self.steps: List[Dict[str, Any]] = []

    def describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        if isinstance(exc, self.fault_type):
            text += f" [faultcode {self.fault_code(exc)[0]}]"
        return text

    def run(self, name: str, body: Callable[[], Optional[str]]) -> None:
        try:
            request_id = body()
        except Exception as exc:  # any failure is this step's result, reported for the test to show
            self.steps.append({"step": name, "ok": False, "error": self.describe(exc)})
            return
        self.steps.append({"step": name, "ok": True, **({} if request_id is None else {"request_id": request_id})})

    def fault(self, name: str, body: Callable[[], object]) -> None:
        """A step that must end in the stack's own fault type; its faultcode is what the test checks."""
        try:
            body()
        except self.fault_type as exc:
            code, text = self.fault_code(exc)
            kind = f"{type(exc).__module__}.{type(exc).__name__}"
            self.steps.append({"step": name, "ok": True, "fault_type": kind, "fault_code": code, "fault_string": text})
        except Exception as exc:  # the wrong kind of failure: reported as such
            self.steps.append({"step": name, "ok": False, "error": self.describe(exc)})
        else:
            self.steps.append({"step": name, "ok": False, "error": "no fault"})

    def print(self, client: str) -> None:
        print(json.dumps({"client": client, "steps": self.steps}))
