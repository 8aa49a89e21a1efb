"""The receiver against hostile clients, on both servers: budgets for dead letters, poisoned
callbacks, closed by default, workers that survive store errors, commits that cannot freeze the
event loop, and a fuzz over HTTP that must never see a 5xx."""

from __future__ import annotations

import dataclasses
import fcntl
import http.client
import json
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import test_receiver
from hostile import FAMILIES
from test_receiver import SECRET, Running, callback
from test_xmlsafe import Canary, hostile_corpus

from uws_adapter import InputError, render_callback, render_rest_callback
from uws_adapter.errors import HandlerGaveUp
from uws_adapter.receiver.app import DeadLetterBudget, Receiver
from uws_adapter.receiver.asgi import AsyncReceiver
from uws_adapter.store.sqlite import Store, StoredEvent
from uws_adapter.store.sqlite_writes import POISONED, CallbackWork

start = test_receiver.start  # the same servers, both of them


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class FrozenClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dead_letters(store: Store) -> List[Tuple[str, bytes]]:
    return [(r[0], r[1]) for r in store._reader().execute("SELECT reason, body FROM dead_letters ORDER BY id")]


@pytest.mark.parametrize("field", ["username", "password", "previous_password"])
def test_credentials_with_a_byte_the_locale_cannot_decode_are_refused_at_start(tmp_path: Path, field: str) -> None:
    # What Python makes of a Latin-1 password in a UTF-8 environment: every callback was a 500.
    given = {"username": "u", "password": "p", field: "S3cr3t\udce4"}
    with Store(tmp_path / "c.db") as store:
        with pytest.raises(InputError) as info:
            Receiver(store, **given)
        assert info.value.field == field
        assert "S3cr3t" not in str(info.value)


@pytest.mark.parametrize("backoff", [float("nan"), float("inf"), 1e10, 0.0, -1.0])
def test_a_handler_backoff_no_wait_can_take_is_refused_at_start(tmp_path: Path, backoff: float) -> None:
    # NaN made the handler threads spin; past threading.TIMEOUT_MAX a raw OverflowError ended them.
    with Store(tmp_path / "c.db") as store:
        with pytest.raises(InputError) as info:
            Receiver(store, allow_anonymous=True, handler_backoff=backoff)
        assert info.value.field == "handler_backoff"


@pytest.mark.parametrize("field", ["handler_backoff", "handler_lease"])
def test_an_integer_past_a_float_is_refused_by_name(tmp_path: Path, field: str) -> None:
    # Each was converted to a float before it was compared: a raw OverflowError.
    with Store(tmp_path / "c.db") as store:
        for wait in (10**400, -(10**400), 10**5000):
            with pytest.raises(InputError) as info:
                Receiver(store, allow_anonymous=True, **{field: wait})
            assert info.value.field == field


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 1e10, 0.0, "15"])
def test_a_commit_timeout_no_timer_can_take_is_refused(tmp_path: Path, timeout: object) -> None:
    # A timer of the event loop's: NaN went into its queue of timers as it was.
    with Store(tmp_path / "c.db") as store:
        receiver = Receiver(store, allow_anonymous=True)
        try:
            with pytest.raises(InputError) as info:
                AsyncReceiver(receiver, commit_timeout=timeout)  # type: ignore[arg-type]
            assert info.value.field == "commit_timeout"
        finally:
            receiver.close()


def test_a_refusal_quoting_the_document_says_its_charset(start: Callable[..., Running]) -> None:
    # The reason quotes the refused value; as bare text/plain (US-ASCII) clients misread it.
    receiver = start()
    body = render_callback(callback()).replace(b"<CallbackCount>1<", "<CallbackCount>\uff13<".encode())
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        connection.request("POST", "/callbacks", body=body, headers={"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    assert response.status == 400
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert "'\uff13' is not an integer" in answer.decode("utf-8")


def test_a_receiver_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        with pytest.raises(InputError, match="allow_anonymous"):
            Receiver(store)
        Receiver(store, allow_anonymous=True).close()


@pytest.mark.parametrize(
    "given", [{"username": "listener"}, {"password": "S3cr3t-half"}], ids=["username-only", "password-only"]
)
@pytest.mark.parametrize("anonymous", [False, True], ids=["named", "anonymous-allowed"])
def test_half_a_login_is_refused_as_the_settings_refuse_it(
    tmp_path: Path, given: Dict[str, str], anonymous: bool
) -> None:
    # A username and no password let in every callback that gave that name and an empty password.
    with Store(tmp_path / "c.db") as store, pytest.raises(InputError) as info:
        Receiver(store, allow_anonymous=anonymous, **given)
    assert info.value.field == "username"
    assert "both a username and a password" in str(info.value)
    assert "S3cr3t" not in str(info.value)


def test_dead_letters_stop_at_the_burst_while_callbacks_keep_being_stored(start: Callable[..., Running]) -> None:
    clock = FrozenClock()  # no refill: exactly the burst is kept, however long the flood lasts
    receiver = start(username="listener", password=SECRET, dead_letters=DeadLetterBudget(burst=5, clock=clock))
    flood_statuses: List[int] = []
    stop = threading.Event()

    def flood() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        while not stop.is_set():
            connection.request("POST", "/", body=b"<broken" + b"x" * 60_000, headers={"Content-Type": "text/xml"})
            response = connection.getresponse()
            response.read()
            flood_statuses.append(response.status)
        connection.close()

    flooders = [threading.Thread(target=flood) for _ in range(4)]
    for thread in flooders:
        thread.start()
    try:
        assert wait_until(lambda: len(flood_statuses) >= 40)
        legitimate = [receiver.post(render_callback(callback(n, password=SECRET)))[0] for n in range(30)]
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
    assert legitimate == [200] * 30
    assert set(flood_statuses) == {400}
    counts = receiver.store.counts()
    assert (counts["events"], counts["dead_letters"]) == (30, 5)
    assert receiver.app.dead_letters.dropped == len(flood_statuses) - 5


def test_the_budget_refills_at_its_rate(start: Callable[..., Running]) -> None:
    clock = FrozenClock()
    receiver = start(dead_letters=DeadLetterBudget(burst=2, per_second=0.5, clock=clock))
    for _ in range(4):
        assert receiver.post(b"<broken")[0] == 400
    assert receiver.store.counts()["dead_letters"] == 2
    clock.now += 4.0  # two more tokens
    for _ in range(4):
        assert receiver.post(b"<broken")[0] == 400
    assert receiver.store.counts()["dead_letters"] == 4


def test_dead_letters_rotate_the_oldest_out_past_their_total_size(start: Callable[..., Running]) -> None:
    receiver = start(dead_letters=DeadLetterBudget(max_total=25_000))
    for n in range(5):
        assert receiver.post(b"<broken" + str(n).encode() + b"x" * 10_000)[0] == 400
    store = receiver.store
    letters = store.dead_letters(bodies=True)
    assert [letter.body[:8] for letter in letters] == [b"<broken3", b"<broken4"]  # the newest two
    totals = store.dead_letter_totals()
    assert (totals.rotated, receiver.app.dead_letters.dropped) == (3, 0)
    assert sum(letter.size for letter in letters) == totals.bytes <= 25_000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"requestId": "r", "username": "\\ud800", "password": "x"}', "application/json"),
        ('{"requestId": "r", "username": "listener", "password": "\\udfff"}', "application/json"),
        ('{"requestId": "\\ud800"}', "application/json"),
        ('{"requestId": "r", "callbackCount": ' + "9" * 4301 + "}", "application/json"),
        # Authenticated (the credentials are read first: wrong ones are a 401 before any value is).
        ('{"requestId": "r", "username": "listener", "password": "' + SECRET + '", "callbackCount": "'
         + "9" * 4301 + '"}', "application/json"),
        ('{"requestId": "r", "callbackCount": 99999999999999999999}', "application/json"),
        ("<CallbackRequest xmlns='http://nphase.com/unifiedwebservice/v2'><Username>listener</Username>"
         "<Password>" + SECRET + "</Password><RequestId>r</RequestId><Data><Data>"
         "<CallbackCount>" + "9" * 4301 + "</CallbackCount></Data></Data></CallbackRequest>", "text/xml"),
        ("<CallbackRequest xmlns='http://nphase.com/unifiedwebservice/v2'><RequestId>&#xD800;</RequestId>"
         "</CallbackRequest>", "text/xml"),
    ],
    ids=["surrogate-username", "surrogate-password", "surrogate-request-id", "4301-digit-count",
         "4301-digit-count-string", "20-digit-count", "4301-digit-count-xml", "surrogate-reference-xml"],
)  # fmt: skip
def test_values_that_crashed_are_clean_refusals(start: Callable[..., Running], body: str, content_type: str) -> None:
    receiver = start(username="listener", password=SECRET)
    status, reason = receiver.post(body.encode(), content_type)
    assert status == 400
    assert reason.strip()


def test_a_callback_the_store_cannot_hold_is_kept_as_a_dead_letter(tmp_path: Path) -> None:
    # Through the HTTP path such values are refused by the parsers now; a Python caller can still
    # hand the store a count no SQLite integer holds.
    with Store(tmp_path / "c.db") as store:
        poisoned = dataclasses.replace(callback(password=SECRET), callback_count=10**30)
        result = store.write(CallbackWork(poisoned, (), document=b"<kept/>", media_type="text/xml"))
        assert result == (POISONED, False)
        [(reason, body)] = dead_letters(store)
        assert "could not be stored as an event: OverflowError" in reason
        assert body == b"<kept/>"
        assert store.counts()["events"] == 0
        assert store.add_callback(callback(1))[1] is True  # the store goes on


def test_refused_documents_are_redacted_in_every_form(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET)
    forms = [
        f'<?xml version="1.0" encoding="UTF-16"?><CallbackRequest><Password>{SECRET}</Password>'.encode("utf-16"),
        f"<CallbackRequest><Password>{SECRET}</Password>".encode("utf-32"),
        b"<CallbackRequest><Password>" + "".join(f"&#{ord(c)};" for c in SECRET).encode() + b"</Password>",
        b'{"requestId": "r", "pass\\u0077ord": "' + "".join(f"\\u{ord(c):04x}" for c in SECRET).encode() + b'"',
        b"<CallbackRequest>" + b"x" * (70 * 1024) + b"<Password>" + SECRET.encode(),
        b"<CallbackRequest><Comment>" + b"y" * (64 * 1024 - 30) + b"</Comment><Password>" + SECRET.encode() + b"</",
    ]
    for body in forms:
        content_type = "application/json" if body.startswith(b"{") else "text/xml"
        assert receiver.post(body, content_type)[0] == 400
    letters = dead_letters(receiver.store)
    assert len(letters) == len(forms)
    for _, body in letters:
        assert SECRET.encode() not in body
        assert SECRET.encode("utf-16-le") not in body
    receiver.close()
    for path in receiver.store.path.parent.glob("callbacks.db*"):
        data = path.read_bytes()
        for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            assert SECRET.encode(encoding) not in data, (path.name, encoding)


def test_handler_runs_survive_a_store_that_fails_for_a_while(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ran: List[int] = []
    store = Store(tmp_path / "c.db", lock_timeout=0.2)
    receiver = Receiver(
        store, allow_anonymous=True, handler_backoff=0.02, handlers={"count": lambda e: ran.append(e.id)}
    )
    try:
        event_id, _ = store.write(CallbackWork(callback(), ("count",)))
        receiver.wake_handlers()
        assert wait_until(lambda: ran == [event_id])
        assert wait_until(lambda: store.counts()["handler_queue"] == 0)  # the first run is recorded
        # A foreign writer holds the store's write lock: recording runs fails until it lets go.
        held = open(f"{store.path}.writelock", "a+")  # noqa: SIM115
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        raw = sqlite3.connect(str(store.path), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        second, _ = CallbackWork(callback(1), ("count",))(raw)
        raw.execute("COMMIT")
        raw.close()
        receiver.wake_handlers()
        # Claiming a run is a write (so that no two runners take it): it fails while the lock is
        # held, the runner logs and keeps trying, and nothing runs unclaimed.
        assert wait_until(lambda: "handler queue unreadable" in caplog.text)
        assert ran == [event_id]
        assert store.counts()["handler_queue"] == 1
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        held.close()
        assert wait_until(lambda: ran == [event_id, second])
        assert wait_until(lambda: store.counts()["handler_queue"] == 0)
        third, _ = store.write(CallbackWork(callback(2), ("count",)))
        receiver.wake_handlers()
        assert wait_until(lambda: ran[-1:] == [third])
        assert ran == [event_id, second, third]  # nothing ran twice
        assert receiver._runner is not None
        assert receiver._runner.is_alive()
    finally:
        receiver.close()
        store.close()


def test_a_handler_that_gives_up_is_dead_lettered_and_the_next_events_go_on(start: Callable[..., Running]) -> None:
    seen: List[str] = []

    def picky(event: StoredEvent) -> None:
        if event.callback.devices[0].identifier.endswith("0"):
            raise HandlerGaveUp("cannot be written as SOAP: a control character in comment")
        seen.append(event.callback.devices[0].identifier)

    receiver = start(handlers={"picky": picky}, handler_backoff=0.02)
    assert receiver.post(render_callback(callback(0)))[0] == 200
    assert receiver.post(render_callback(callback(1)))[0] == 200
    assert wait_until(lambda: len(seen) == 1 and receiver.store.counts()["handler_queue"] == 0)
    [(reason, body)] = dead_letters(receiver.store)
    assert "handler 'picky' gave up on event 1: cannot be written as SOAP" in reason
    assert json.loads(body)["request_id"] == "req-1"


def test_a_stuck_commit_answers_503_and_never_freezes_health(tmp_path: Path) -> None:
    from servers import AsgiServer

    from uws_adapter.receiver.asgi import server_config

    store = Store(tmp_path / "c.db", lock_timeout=30)
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), commit_timeout=1.0)
    server = AsgiServer(app, **server_config(app))
    held = open(f"{store.path}.writelock", "a+")  # noqa: SIM115  # a foreign process's write lock
    fcntl.flock(held.fileno(), fcntl.LOCK_EX)
    answers: Dict[str, Optional[int]] = {"callback": None}
    try:

        def post() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request("POST", "/", body=render_callback(callback()), headers={"Content-Type": "text/xml"})
            answers["callback"] = connection.getresponse().status
            connection.close()

        poster = threading.Thread(target=post)
        poster.start()
        health = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        health.request("GET", "/health")
        assert health.getresponse().status == 200
        health.close()
        assert answers["callback"] is None  # still waiting for its commit, while /health answered
        poster.join(30)
        assert answers["callback"] == 503
    finally:
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        held.close()
    assert wait_until(lambda: store.counts()["events"] in (0, 1))
    server.close()
    store.close()


def test_every_callback_waiting_on_a_stuck_commit_is_answered_503_at_its_deadline(tmp_path: Path) -> None:
    """One timer serves every waiting callback (the head's deadline): callbacks parked in the same
    group and behind it are all answered 503, and once the lock is free the next one is stored."""
    from servers import AsgiServer

    from uws_adapter.receiver.asgi import server_config

    store = Store(tmp_path / "c.db", lock_timeout=30)
    app = AsyncReceiver(Receiver(store, allow_anonymous=True), commit_timeout=0.5, committers=1)
    server = AsgiServer(app, **server_config(app))
    held = open(f"{store.path}.writelock", "a+")  # noqa: SIM115  # a foreign process's write lock
    fcntl.flock(held.fileno(), fcntl.LOCK_EX)

    def post(number: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = render_callback(callback(number, password=None))
        connection.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
        status = connection.getresponse().status
        connection.close()
        return status

    statuses: List[int] = []
    try:
        posters = [threading.Thread(target=lambda n=n: statuses.append(post(n))) for n in range(6)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(30)
        assert statuses == [503] * 6
    finally:
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        held.close()
    assert post(99) == 200  # the watchdog went on after the queue of deadlines emptied
    assert wait_until(lambda: 1 <= store.counts()["events"] <= 7)
    server.close()
    store.close()


def _fuzz_inputs(seed: int, count: int) -> List[Tuple[str, bytes, str]]:
    rng = random.Random(seed)
    valid = [render_callback(callback(n, password=SECRET)) for n in range(5)]
    valid += [render_rest_callback(callback(n, password=SECRET)) for n in range(5)]
    inputs: List[Tuple[str, bytes, str]] = []
    for n in range(count):
        base = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(base))
            action = rng.random()
            if action < 0.4:
                base[at] = rng.randrange(256)
            elif action < 0.7:
                del base[at : at + rng.randint(1, 40)]
            else:
                base[at:at] = rng.choice([b"<", b">", b"&#", b"\\u", b'"', b"9" * 30, b"\xff\xfe", b"]]>", b"<?a?>"])
        content_type = "application/json" if base[:1] == b"{" else "text/xml"
        inputs.append((f"mutation-{n}", bytes(base), content_type))
    return inputs


def test_no_input_gets_a_5xx(start: Callable[..., Running]) -> None:
    receiver = start(username="listener", password=SECRET, dead_letters=DeadLetterBudget(burst=1000))
    canary = Canary()
    try:
        inputs = [(f"corpus-{name}", d.encode() if isinstance(d, str) else d, "text/xml")
                  for name, d in hostile_corpus(canary.port).items()]  # fmt: skip
        inputs += [(f"family-{name}", make(64 * 1024), media) for name, (media, make) in FAMILIES.items()]
        inputs += _fuzz_inputs(11, 300)
        statuses: Dict[str, int] = {}
        for name, body, content_type in inputs:
            status, reason = receiver.post(body, content_type)
            statuses[name] = status
            assert status < 500, (name, status, reason)
            if status != 200:
                assert reason.strip(), name  # every refusal says why
        strays = canary.settled()  # every connection made so far, counted
    finally:
        canary.close()
    assert strays == 0
    refused = sum(1 for s in statuses.values() if 400 <= s < 500)
    print(f"\n{len(inputs)} inputs over HTTP: {refused} clean refusals, "
          f"{sum(1 for s in statuses.values() if s == 200)} accepted, 0 with 5xx")  # fmt: skip


def test_the_documented_end_tag_defect_is_mended_only_when_repair_is_on(start: Callable[..., Running]) -> None:
    documented = (Path(__file__).parents[1] / "data" / "doc-restore-callback.xml").read_bytes()
    assert b"</MaxCallbackThreshold/>" in documented
    strict = start()
    status, reason = strict.post(documented)
    assert status == 400
    assert b"repair" in reason
    strict.close()
    mending = start(repair=True)
    assert mending.post(documented)[0] == 200
    assert mending.app.repaired == 1
    assert mending.post(render_callback(callback()))[0] == 200  # a sound callback is not counted
    assert mending.app.repaired == 1
