"""The text zeep renders around a device list, kept per (action, token, kinds of the first device)
(uws/envelope.py, issue 19): whatever threads build at once, with tokens changing, kinds in either
order and actions alternating, every envelope is element for element zeep's own, with its own token
and devices (a device's kinds, in either order, are inside the spliced list); the kept frames stay
bounded; a token that cannot be rendered is neither kept nor shown in the error."""

from __future__ import annotations

import threading
from typing import List, Optional, Tuple

import pytest
from conftest import parse_trusted, shape
from forking import forked_while_held

from uws_adapter import Device, Restore, Suspend, build_envelope, select, zeep_envelope
from uws_adapter.errors import InputError
from uws_adapter.model.actions import Action
from uws_adapter.uws import envelope

THREADS = 8
ROUNDS = 12


def _device(n: int, order: int) -> Device:
    """A device of two identifiers, in one order or the other (kinds ICCID+IMEI or IMEI+ICCID)."""
    imei, iccid = f"IMEI:{350000000000000 + n}", f"ICCID:{89148000000000000000 + n}"
    return Device.parse(f"{imei}+{iccid}" if order else f"{iccid}+{imei}")


def _token_of(body: bytes) -> Optional[str]:
    found = [e.text for e in parse_trusted(body).iter() if isinstance(e.tag, str) and e.tag.endswith("}token")]
    return found[0] if len(found) == 1 else None


def test_envelopes_built_at_once_each_carry_their_own_token_devices_and_kinds() -> None:
    start = threading.Barrier(THREADS)
    failures: List[str] = []
    built: List[Tuple[Action, List[Device], str, bytes]] = []
    guard = threading.Lock()

    def build(worker: int) -> None:
        start.wait()
        for n in range(ROUNDS):
            action: Action = Restore() if (worker + n) % 2 else Suspend()
            token = f"tok-{worker % 3}-{n % 4}&<x>"  # tokens shared by some threads, escaped by zeep
            devices = [_device(1000 * worker + 10 * n + k, (worker + n + k) % 2) for k in range(1 + n % 3)]
            body = build_envelope(action, select(devices), token=token).body
            if _token_of(body) != token:
                failures.append(f"worker {worker} round {n}: token {_token_of(body)!r}")
            with guard:
                built.append((action, devices, token, body))

    threads = [threading.Thread(target=build, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(built) == THREADS * ROUNDS
    for action, devices, token, body in built:  # zeep's own rendering, one by one, after the race
        assert shape(parse_trusted(body)) == shape(zeep_envelope(action, select(devices), token=token))


def test_the_frames_kept_are_bounded_and_the_latest_tokens_win() -> None:
    for n in range(4 * envelope._FRAMES_KEPT):
        build_envelope(Suspend(), select([_device(n, n % 2)]), token=f"session-{n}")
    assert len(envelope._FRAMES) == envelope._FRAMES_KEPT
    kept = {key[1] for key in envelope._FRAMES}
    last = 4 * envelope._FRAMES_KEPT
    assert kept == {f"session-{n}" for n in range(last - envelope._FRAMES_KEPT, last)}


def test_a_token_zeep_cannot_render_is_not_kept_nor_shown() -> None:
    secret = "s3cr3t-\x01-value"
    before = dict(envelope._FRAMES)
    with pytest.raises(InputError, match="token: has a character XML cannot carry at position 7") as refused:
        build_envelope(Restore(), select([_device(7, 0)]), token=secret)
    assert "s3cr3t" not in str(refused.value)
    assert "s3cr3t" not in repr(refused.value)
    assert dict(envelope._FRAMES) == before


def test_a_forked_child_builds_envelopes_even_if_a_parent_thread_held_the_frames() -> None:
    """A thread of the parent holds the frames' lock when the process forks (a multiprocessing
    fork beside threads that build envelopes): the child has no such thread, and must still build."""

    def build() -> bytes:
        body = build_envelope(Suspend(), select([_device(1, 0)]), token="child-token").body
        return b"built" if _token_of(body) == "child-token" else b"wrong token"

    assert forked_while_held(envelope._FRAMES_LOCK, build) == b"built"
