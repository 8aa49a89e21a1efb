"""What an unauthenticated SOAP request of empty elements costs the SOAP server (the bridge's and
the emulator's) before its refusal, at 1 to 8 MiB (the bridge's body limit), against its floor in
the same run: the same bytes through the hardened parse without the element bound, then the
Body's children walked, which is what reading such a request cost before the bound. Beside them,
the largest request there is (10,000 devices named by every kind UWS takes), read in full: the
bound must let it through. Last, a LogIn beneath namespace declarations on the Envelope (no
elements: the bound does not see them), read in full, against the hardened parse of the same bytes
(validating the payload beneath them was quadratic in their number: 90 s of CPU at 6 MB).

    python benchmarks/soap_flood.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

from uws_adapter import Device, Suspend, build_envelope, select
from uws_adapter.bridge.app import MAX_REQUEST_BYTES
from uws_adapter.errors import Refused
from uws_adapter.model.devices import API_KINDS, DeviceIdentifier
from uws_adapter.model.selection import MAX_DEVICES_PER_REQUEST
from uws_adapter.soap.server import MAX_REQUEST_NODES, read_call
from uws_adapter.xmlsafe import parse_untrusted

ENVELOPE = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>%s</s:Body></s:Envelope>'
FORMS = {"ESN": "%011d", "MEID": "A%013X", "IMEI": "%015d", "ICCID": "8914%016d", "MDN": "%010d",
         "MSISDN": "1%010d", "MIN": "%010d"}  # fmt: skip


def best_of(repeat: int, work: Callable[[bytes], object], body: bytes) -> float:
    """The least CPU time of ``repeat`` runs of ``work(body)``, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work(body)
        best = min(best, time.process_time() - started)
    return best * 1000


def refused(body: bytes) -> None:
    try:
        read_call("CarrierService", body, max_bytes=MAX_REQUEST_BYTES)
    except Refused:
        return
    raise AssertionError("a body of empty elements was read")


def unbounded(body: bytes) -> None:
    root = parse_untrusted(body, max_bytes=MAX_REQUEST_BYTES, what="request")
    assert len([child for child in root[0] if isinstance(child.tag, str)]) > 1


LOGIN = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"%s><s:Body><v2:LogIn '
    b'xmlns:v2="http://nphase.com/unifiedwebservice/v2" xmlns:ses="http://schemas.datacontract.org/2004/07/'
    b'NPhase.UnifiedWebService.APIs.v2.Contract.SessionService"><v2:Input><ses:Username>u</ses:Username>'
    b"<ses:Password>p</ses:Password></v2:Input></v2:LogIn></s:Body></s:Envelope>"
)


def declarations(mib: int) -> bytes:
    """A LogIn beneath about ``mib`` MiB of namespace declarations on its Envelope."""
    flood = b"".join(b' xmlns:p%d="urn:p:%d"' % (n, n) for n in range(mib * 2**20 // 26))
    return LOGIN % flood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"element bound {MAX_REQUEST_NODES:,}; body limit {MAX_REQUEST_BYTES:,} bytes; CPU, best of {args.repeat}")
    for mib in (1, 2, 4, 8):
        body = ENVELOPE % (b"<a/>" * ((mib * 2**20 - len(ENVELOPE)) // 4))
        ours, floor = best_of(args.repeat, refused, body), best_of(args.repeat, unbounded, body)
        print(f"  {mib} MiB of empty elements: refused in {ours:7.1f} ms; unbounded parse and walk "
              f"{floor:7.1f} ms; {ours / floor:4.2f}x")  # fmt: skip
    devices = [
        Device(tuple(DeviceIdentifier(kind, form % (10**9 + n)) for kind, form in FORMS.items()))
        for n in range(MAX_DEVICES_PER_REQUEST)
    ]
    assert sorted(FORMS) == sorted(API_KINDS["soap"])
    largest = build_envelope(Suspend(), select(devices), token="t" * 32).body
    cost = best_of(args.repeat, lambda body: read_call("CarrierService", body, max_bytes=MAX_REQUEST_BYTES), largest)
    print(f"  the largest request ({len(largest):,} bytes): read and validated in {cost:7.1f} ms")
    for mib in (1, 2, 4, 6):
        body = declarations(mib)
        read = best_of(args.repeat, lambda body: read_call("SessionService", body, max_bytes=MAX_REQUEST_BYTES), body)
        floor = best_of(args.repeat, lambda body: parse_untrusted(body, max_bytes=MAX_REQUEST_BYTES), body)
        print(f"  a LogIn beneath {mib} MiB of namespace declarations: read in {read:7.1f} ms; hardened parse "
              f"{floor:7.1f} ms; {read / floor:4.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
