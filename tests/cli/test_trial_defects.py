"""The command line's defects from the new-user trial (issue 20), each as a process against real
servers: listener credentials (item 2), "nothing arrived" (3), settings errors (6), the bridge's
--register over another listener (9), one way to write a device (11), counts, headers and times
(12), listener URL examples (15), install hints (16), logging on client commands (19), the id of
a request whose outcome is unknown and callbacks' filters (20), UTF-16 callbacks (21), the daily
budget's range and off switch (22)."""

from __future__ import annotations

import codecs
import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, DATA, PASSWORD, USER
from servers import HttpServer
from test_cli import run

from uws_adapter import CallbackRequest, Device, Emulator, ReportedDevice, generated_devices
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.store.sqlite import Store

LOGIN = {"UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_ID": CLIENT_ID,
         "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
#: The first line the emulator fixture serves (generated_devices is deterministic).
FIRST = str(generated_devices(2)[0].device)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(2)) as served:
        yield served


# item 2 -------------------------------------------------------------------------------------------


def test_listeners_register_refuses_without_credentials_and_says_how(tmp_path: Path, emulator: Emulator) -> None:
    env = {**LOGIN, "UWS_ADAPTER_REST_URL": emulator.rest_url}
    url = "http://127.0.0.1:9/callbacks"
    refused = run(["listeners", "register", DEFAULT_ACCOUNT, url], tmp_path, **env)
    assert refused.returncode == 2
    assert "no callback credentials" in refused.stderr
    assert "--listener-username and --listener-password (or set UWS_CALLBACK_USERNAME" in refused.stderr
    assert "--allow-anonymous" in refused.stderr
    assert run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env).stdout == ""  # nothing registered
    anonymous = run(["listeners", "register", DEFAULT_ACCOUNT, url, "--allow-anonymous"], tmp_path, **env)
    assert anonymous.returncode == 0, anonymous.stderr
    half = run(["listeners", "register", DEFAULT_ACCOUNT, url, "--listener-username", "cb"], tmp_path, **env)
    assert half.returncode == 2
    assert "give both a username and a password, or neither" in half.stderr


# item 15 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["listeners", "register", DEFAULT_ACCOUNT, "ftp://x/", "--allow-anonymous"],
     ["emulator", "--listener", "ftp://x/"], ["bridge", "--legacy-listener", "ftp://x/"]],
    ids=["listeners-register", "emulator", "bridge"],
)  # fmt: skip
def test_a_refused_listener_url_gets_a_listener_example(tmp_path: Path, args: List[str]) -> None:
    result = run(args, tmp_path, **LOGIN)
    assert result.returncode == 2, result.stderr
    assert "e.g. https://listener.example.com/callbacks" in result.stderr
    assert "uws.apps.nphase.com" not in result.stderr


# item 3 -------------------------------------------------------------------------------------------


def test_wait_tells_nothing_arrived_apart(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    with Store(db) as store:
        store.record_request("acct-0", "Suspend", ())
    result = run(["wait", "acct-0", "--db", str(db), "--settle", "0"], tmp_path)
    assert result.returncode == 4, result.stderr
    assert "no callback arrived at all: check that a listener is registered" in result.stderr
    assert "0 callbacks so far" in result.stdout


# item 6 -------------------------------------------------------------------------------------------


def test_settings_errors_name_where_they_were_written(tmp_path: Path) -> None:
    config = tmp_path / "uws.ini"
    config.write_text("[uws-adapter]\nbackend = soap\n\n[recevier]\nport = 1\n")
    misspelled = run(["status", "x", "--db", str(tmp_path / "c.db")], tmp_path)  # no settings: unaffected
    assert "recevier" not in misspelled.stderr
    sent = run(["restore", "--device", "ESN:09611822299", "--config", str(config)], tmp_path, **LOGIN)
    assert sent.returncode == 2
    assert f"config file {config} line 4: [recevier] is not a known section" in sent.stderr
    config.write_text("[uws-adapter]\ndeadline = soon\n")
    late = run(["restore", "--device", "ESN:09611822299", "--config", str(config)], tmp_path, **LOGIN)
    assert f"config file {config} line 2: [uws-adapter] deadline: 'soon' is not a number of seconds" in late.stderr
    loud = run(["status", "x", "--db", str(tmp_path / "c.db")], tmp_path, UWS_ADAPTER_LOG_LEVEL="loud")
    assert loud.returncode == 2
    assert "UWS_ADAPTER_LOG_LEVEL: 'loud' is not a level" in loud.stderr
    option = run(["status", "x", "--log-level", "loud"], tmp_path)
    assert "--log-level: 'loud' is not a level" in option.stderr
    receiver = run(["receiver", "--port", "0", "--config", str(config)], tmp_path)
    assert receiver.returncode == 2


# item 9 -------------------------------------------------------------------------------------------


def _start_bridge(tmp_path: Path, emulator: Emulator, *extra: str) -> subprocess.Popen[str]:
    env = {**LOGIN, "UWS_ADAPTER_REST_URL": emulator.rest_url, "UWS_CALLBACK_USERNAME": "cb",
           "UWS_CALLBACK_PASSWORD": "cb-pw", "UWS_BRIDGE_LEGACY_LOGIN": "legacy:legacy-pw"}  # fmt: skip
    command = [sys.executable, "-m", "uws_adapter", "bridge", "--port", "0", "--db", str(tmp_path / "b.db"),
               "--register", DEFAULT_ACCOUNT, "--public-url", "http://bridge.example", *extra]  # fmt: skip
    import os

    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_the_bridge_replaces_another_listener_only_with_replace(tmp_path: Path, emulator: Emulator) -> None:
    env = {**LOGIN, "UWS_ADAPTER_REST_URL": emulator.rest_url}
    other = "https://user:other-pw@erp.example/callbacks"
    registered = run(["listeners", "register", DEFAULT_ACCOUNT, other, "--allow-anonymous"], tmp_path, **env)
    assert registered.returncode == 0, registered.stderr
    refused = _start_bridge(tmp_path, emulator)
    _, stderr = refused.communicate(timeout=60)
    assert refused.returncode == 2, stderr
    assert f"{DEFAULT_ACCOUNT} already has a CarrierService listener, 'https://***@erp.example/callbacks'" in stderr
    assert "pass --replace" in stderr
    assert "other-pw" not in stderr
    listed = run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env)
    assert "erp.example" in listed.stdout  # untouched
    replacing = _start_bridge(tmp_path, emulator, "--replace")
    try:
        assert replacing.stdout is not None
        banner = replacing.stdout.readline()
        assert "replaced the CarrierService listener of" in banner
        assert "(was 'https://***@erp.example/callbacks')" in banner
        listed = run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env)
        assert "http://bridge.example/callbacks" in listed.stdout
    finally:
        replacing.send_signal(signal.SIGINT)
        _, stderr = replacing.communicate(timeout=60)
    assert "--replace: the CarrierService listener of" in stderr
    assert replacing.returncode == 130


# items 11, 12, 20 ---------------------------------------------------------------------------------


def _store_with_callbacks(db: Path) -> None:
    with Store(db) as store:
        store.record_request(
            "r-1",
            "Suspend",
            [
                Device.parse("IMEI:350000000000001+ICCID:89148000000000000001"),
                Device.parse("IMEI:350000000000002+ICCID:89148000000000000002"),
            ],
        )
        store.record_request("acct-1", "Suspend", ())
        for request_id, number in (("r-1", 1), ("acct-1", 3), ("acct-1", 4)):
            devices = (
                ReportedDevice("ICCID", f"8914800000000000000{number}"),
                ReportedDevice("IMEI", f"35000000000000{number}"),
            )
            store.add_callback(CallbackRequest(request_id, devices, service="CarrierService", action="Suspend",
                                               status="Success"))  # fmt: skip


def test_status_writes_devices_one_way_and_times_in_iso(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    _store_with_callbacks(db)
    status = json.loads(run(["status", "r-1", "--db", str(db), "--json"], tmp_path).stdout)
    assert status["succeeded"] == ["IMEI:350000000000001+ICCID:89148000000000000001"]
    assert status["pending"] == ["IMEI:350000000000002+ICCID:89148000000000000002"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["sent_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["last_callback_at"])
    open_ended = json.loads(run(["status", "acct-1", "--db", str(db), "--json"], tmp_path).stdout)
    assert open_ended["succeeded"] == ["IMEI:350000000000003+ICCID:89148000000000000003",
                                       "IMEI:350000000000004+ICCID:89148000000000000004"]  # fmt: skip


def test_callbacks_header_empty_state_device_filter_and_paging(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    _store_with_callbacks(db)
    listed = run(["callbacks", "--db", str(db)], tmp_path).stdout.splitlines()
    assert listed[0] == "ID\tREQUEST_ID\tDEVICE\tACTION\tSTATUS\tDELIVERIES"
    assert [row.split("\t")[2] for row in listed[1:]] == [
        f"IMEI:35000000000000{n}+ICCID:8914800000000000000{n}" for n in (1, 3, 4)
    ]
    one = run(["callbacks", "--db", str(db), "--device", "ICCID:89148000000000000003"], tmp_path).stdout.splitlines()
    assert [row.split("\t")[0] for row in one[1:]] == ["2"]
    first = run(["callbacks", "--db", str(db), "--limit", "2"], tmp_path)
    assert len(first.stdout.splitlines()) == 3
    assert "2 callbacks shown; more with --after 2" in first.stderr
    rest = run(["callbacks", "--db", str(db), "--after", "2"], tmp_path).stdout.splitlines()
    assert [row.split("\t")[0] for row in rest[1:]] == ["3"]
    empty = run(["callbacks", "--db", str(db), "--request-id", "nope"], tmp_path)
    assert empty.stdout == f"no callbacks of that request in {db}\n"
    assert run(["callbacks", "--db", str(db), "--request-id", "nope", "--json"], tmp_path).stdout == ""
    bad = run(["callbacks", "--db", str(db), "--limit", "0"], tmp_path)
    assert "--limit: 0 is out of range; give 1 to 100,000" in bad.stderr


def test_an_unknown_outcome_prints_the_recorded_id_status_accepts(tmp_path: Path) -> None:
    # A UWS endpoint that takes the request and never answers: the outcome is unknown.
    stop = threading.Event()
    server = HttpServer(lambda body: (200, "text/xml", b"") if stop.wait(10) else (500, "text/plain", b""))
    db = tmp_path / "log.db"
    try:
        result = run(["restore", "--endpoint", server.url, "--token", "tok", "--timeout", "1,1", "--deadline", "2",
                      "--device", "ESN:09611822299", "--db", str(db)], tmp_path)  # fmt: skip
    finally:
        stop.set()
        server.close()
    assert result.returncode == 1, result.stderr
    found = re.search(r"recorded as (outcome-unknown:[0-9a-f-]{36})", result.stderr)
    assert found, result.stderr
    status = run(["status", found.group(1), "--db", str(db)], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "0 of 1 device)" in status.stdout


# item 16 ------------------------------------------------------------------------------------------


def test_no_hint_names_the_distribution_on_the_index() -> None:
    offending = []
    for folder in ("uws_adapter", "docs", ".ci"):
        for path in (REPO / folder).rglob("*"):
            readable = path.is_file() and path.suffix in ("", ".py", ".md", ".sh")
            if readable and "uws-adapter[" in path.read_text(encoding="utf-8", errors="replace"):
                offending.append(str(path.relative_to(REPO)))
    if "uws-adapter[" in (REPO / "README.md").read_text(encoding="utf-8"):
        offending.append("README.md")
    assert offending == []
    from uws_adapter.errors import install_hint

    assert install_hint("postgres") == "install it from a checkout of uws-adapter: pip install '.[postgres]'"


# item 19 ------------------------------------------------------------------------------------------


def test_client_commands_take_log_level_and_show_the_wire(tmp_path: Path, emulator: Emulator) -> None:
    result = run(["suspend", "--endpoint", emulator.base_url, "--device", FIRST,
                  "--log-level", "debug", "--log-format", "json"], tmp_path, **LOGIN)  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    wire = [r for r in records if r["logger"] == "uws_adapter.wire"]
    assert wire, result.stderr
    assert any("ChangeDeviceState" in r["message"] for r in wire)
    assert PASSWORD not in result.stderr
    for command in (["status", "x"], ["listeners", "list", "a"], ["restore"], ["callbacks"]):
        helped = run([*command, "--help"], tmp_path)
        assert "--log-level" in helped.stdout


# item 21 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-8-sig"])
def test_parse_detects_xml_by_its_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    declared = "UTF-8" if encoding == "utf-8-sig" else "UTF-16"
    text = (DATA / "suspend-callback-one-data.xml").read_text(encoding="latin-1")
    text = text.replace('encoding="ISO-8859-1"', f'encoding="{declared}"')
    boms = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-8-sig": b""}
    document = tmp_path / "callback.xml"
    document.write_bytes(boms[encoding] + text.encode(encoding))
    result = run(["parse", str(document)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["request_id"] == "7f0e9a40-0000-4000-8000-000000000001"


def test_parse_detects_utf16_xml_without_a_mark_by_its_declaration(tmp_path: Path) -> None:
    text = (DATA / "suspend-callback-one-data.xml").read_text(encoding="latin-1")
    document = tmp_path / "callback.xml"
    document.write_bytes(text.replace('encoding="ISO-8859-1"', 'encoding="UTF-16"').encode("utf-16-le"))
    result = run(["parse", str(document)], tmp_path)
    assert "not UTF-8" not in result.stderr
    assert "JSON" not in result.stderr


# item 22 ------------------------------------------------------------------------------------------


def test_the_daily_budget_says_its_range_and_0_turns_the_guard_off(tmp_path: Path, emulator: Emulator) -> None:
    base = ["restore", "--endpoint", emulator.base_url, "--device", FIRST,
            "--db", str(tmp_path / "log.db")]  # fmt: skip
    too_many = run([*base, "--daily-budget", "1000000"], tmp_path, **LOGIN)
    assert too_many.returncode == 2
    assert "--daily-budget: 1000000 is out of range; give 1 to 1,000" in too_many.stderr
    assert "or 0 to turn the guard off" in too_many.stderr
    for _ in range(2):
        off = run([*base, "--daily-budget", "0"], tmp_path, **LOGIN)
        assert off.returncode == 0, off.stderr
        assert "the daily budget guard is off" in off.stderr
    guarded = run([*base, "--daily-budget", "1"], tmp_path, **LOGIN)
    assert guarded.returncode == 2
    env: Dict[str, str] = {**LOGIN, "UWS_ADAPTER_DAILY_BUDGET": "x"}
    named = run(base, tmp_path, **env)
    assert "UWS_ADAPTER_DAILY_BUDGET: 'x' is not a whole number of actions per line per day" in named.stderr
