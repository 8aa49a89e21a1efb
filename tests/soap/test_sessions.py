"""The one session and LogIn policy (``uws_adapter.soap.sessions``), used by the bridge and the
emulator: verdicts, the doubling delay, bounded memory, and expired tokens recognised for a day,
all timed by an injected clock."""

from __future__ import annotations

import math

import pytest

from uws_adapter.errors import InputError, Refused
from uws_adapter.soap.sessions import (
    FREE_FAILURES,
    KEEP_EXPIRED,
    MAX_FORWARDED,
    IdleSessions,
    LoginThrottle,
    LoginVerdict,
    SessionVerdict,
    client_address,
    client_key,
    known_login,
    login_refusal,
    session_verdict,
    trusted_networks,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_expiry_rule() -> None:
    assert session_verdict(None, 0.0, 60.0) is SessionVerdict.INVALID
    assert session_verdict(100.0, 160.0, 60.0) is SessionVerdict.VALID
    assert session_verdict(100.0, 160.5, 60.0) is SessionVerdict.EXPIRED
    assert session_verdict(100.0, 160.0 + KEEP_EXPIRED, 60.0) is SessionVerdict.EXPIRED
    assert session_verdict(100.0, 161.0 + KEEP_EXPIRED, 60.0) is SessionVerdict.INVALID


def test_failures_past_the_free_ones_double_the_wait_up_to_the_bound() -> None:
    clock = Clock()
    throttle = LoginThrottle(first_delay=1.0, max_delay=10.0, clock=clock)
    verdicts = [throttle.attempt("a", False) for _ in range(FREE_FAILURES)]
    assert verdicts == [(LoginVerdict.WRONG, 0.0)] * (FREE_FAILURES - 1) + [(LoginVerdict.WRONG, 1.0)]
    assert throttle.attempt("a", True) == (LoginVerdict.THROTTLED, 1.0)  # unseen, and not counted
    waits = []
    for _ in range(6):
        clock.now += 10
        waits.append(throttle.attempt("a", False)[1])
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert throttle.attempt("b", True) == (LoginVerdict.OK, 0.0)  # another key is not concerned
    clock.now += 10
    assert throttle.attempt("a", True) == (LoginVerdict.OK, 0.0)
    assert len(throttle) == 0  # a success forgets the key


def test_failures_are_forgotten_a_day_after_the_last() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_delay=None, clock=clock)
    wait = 0.0
    for _ in range(FREE_FAILURES + 15):  # each failure as soon as it may come: 1, 2, ... 2**15 s
        clock.now += wait
        wait = throttle.attempt("a", False)[1]
    assert (wait, throttle.waiting("a")) == (2.0**15, True)
    clock.now += wait + 24 * 3600  # a day after the last failure, the count starts again
    assert throttle.attempt("a", False) == (LoginVerdict.WRONG, 0.0)


def test_the_table_of_keys_is_bounded() -> None:
    throttle = LoginThrottle(capacity=100, clock=Clock())
    for n in range(10_000):
        throttle.attempt(f"guess-{n}", False)
    assert len(throttle) == 100


def test_a_long_key_is_held_by_its_digest_and_still_counted_as_itself() -> None:
    # The emulator's keys are usernames as long as a request may carry: 65,536 of them of 1 MiB
    # each were held whole.
    throttle = LoginThrottle(first_delay=math.inf, max_delay=None, clock=Clock())
    long_name, other = "u" * 1_000_000, "u" * 999_999 + "v"
    for _ in range(FREE_FAILURES):
        throttle.attempt(long_name, False)
    assert throttle.waiting(long_name)
    assert not throttle.waiting(other)
    assert all(len(key) < 100 for key in throttle._keys)


def test_a_key_locked_for_good_says_so_in_the_same_words_for_any_name() -> None:
    throttle = LoginThrottle(first_delay=math.inf, max_delay=None, clock=Clock())
    for name in ("known", "unknown"):
        for _ in range(FREE_FAILURES):
            throttle.attempt(name, False)
    answers = [throttle.attempt(name, True) for name in ("known", "unknown")]
    assert answers == [(LoginVerdict.THROTTLED, math.inf)] * 2
    refused = login_refusal(*answers[0])
    assert isinstance(refused, Refused)
    assert (refused.code, str(refused)) == ("REQUEST_FAILED.AccountLocked", "too many failed logins; ask the operator")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InputError, match="positive"):
        LoginThrottle(first_delay=0.0)
    with pytest.raises(InputError, match="positive"):
        LoginThrottle(max_delay=-1.0)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same host rotating in its /64
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_client_keys(address: str, key: str) -> None:
    assert client_key(address) == key


def test_an_expired_token_is_expired_every_time_for_a_day_then_invalid() -> None:
    clock = Clock()
    sessions = IdleSessions(60.0, clock)
    token = sessions.open()
    clock.now += 61
    for _ in range(3):
        with pytest.raises(Refused) as info:
            sessions.touch(token)
        assert info.value.code == "REQUEST_FAILED.SessionToken.Expired"
    clock.now += KEEP_EXPIRED
    with pytest.raises(Refused) as info:
        sessions.touch(token)
    assert info.value.code == "REQUEST_FAILED.SessionToken.Invalid"


def test_in_memory_sessions_are_bounded() -> None:
    clock = Clock()
    sessions = IdleSessions(60.0, clock, capacity=10)
    tokens = [sessions.open() for _ in range(50)]
    sessions.touch(tokens[-1])
    with pytest.raises(Refused, match="unknown"):
        sessions.touch(tokens[0])  # the least recently used went first
    clock.now += 60 + KEEP_EXPIRED + 1
    sessions.open()  # and whatever no verdict needs goes when another opens
    assert len(sessions._last_use) == 1


PROXIES = trusted_networks(["10.0.0.5", "fd00::/64"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("203.0.113.9", "198.51.100.7", "203.0.113.9", id="an-untrusted-peer-is-the-client"),
        pytest.param("10.0.0.5", None, "10.0.0.5", id="a-trusted-peer-without-the-header"),
        pytest.param("10.0.0.5", "198.51.100.7", "198.51.100.7", id="what-the-proxy-saw"),
        pytest.param("10.0.0.5", "1.2.3.4, 198.51.100.7", "198.51.100.7", id="the-client-s-own-entries-are-ignored"),
        pytest.param("10.0.0.5", "198.51.100.7, fd00::9", "198.51.100.7", id="a-chain-of-trusted-proxies"),
        pytest.param("fd00::1", "2001:db8::1", "2001:db8::1", id="ipv6"),
        pytest.param("::ffff:10.0.0.5", "198.51.100.7", "198.51.100.7", id="an-ipv4-mapped-peer"),
        pytest.param("10.0.0.5", "198.51.100.7, not-an-address", "10.0.0.5", id="a-malformed-entry-keys-the-proxy"),
        pytest.param("10.0.0.5", "10.0.0.5, fd00::2", "10.0.0.5", id="only-proxies"),
        pytest.param("10.0.0.5", "198.51.100.7" + ", 10.0.0.5" * MAX_FORWARDED, "10.0.0.5", id="past-the-bound"),
    ],
)
def test_the_client_address_behind_trusted_proxies(peer: str, forwarded: str, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("10.0.0.5", "198.51.100.7", ()) == "10.0.0.5"


def test_a_long_forwarded_header_is_read_from_its_end_only() -> None:
    header = ", ".join(["1.1.1.1"] * 100_000) + ", 198.51.100.7"
    assert client_address("10.0.0.5", header, PROXIES) == "198.51.100.7"


@pytest.mark.parametrize("value", ["nonsense", "10.0.0.300", "10.0.0.0/33", 167772165], ids=str)
def test_a_trusted_proxy_that_is_not_an_address_is_refused_by_name(value: object) -> None:
    with pytest.raises(InputError, match=r"--trusted-proxy: .* is not an IP address or network"):
        trusted_networks([value], "--trusted-proxy")  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("username", "password", "known"),
    [
        ("uws-user", "uws-password", True),
        ("other", "other-password", True),
        ("uws-user", "other-password", False),  # another login's password
        ("nobody", "uws-password", False),
        ("uws-user", "uws-passwor", False),
        ("uws-user", "", False),
        ("", "", False),
        ("uws-user", "uws-password\udce4", False),  # a lone surrogate from a JSON escape: wrong, no crash
        ("\u00fcser", "p\u00e4ss", True),
    ],
    ids=["first", "second", "crossed", "unknown-name", "prefix", "empty-password", "empty", "surrogate", "non-ascii"],
)
def test_a_login_is_known_only_as_a_whole_pair(username: str, password: str, known: bool) -> None:
    # One rule for the bridge's legacy logins, the emulator's users and its OAuth clients.
    logins = {"uws-user": "uws-password", "other": "other-password", "\u00fcser": "p\u00e4ss"}
    assert known_login(logins, username, password) is known
