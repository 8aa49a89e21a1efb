"""The ``uws-adapter`` command, run from outside the checkout: what each command prints and how it
fails, called in this process (tests/clirun.py); the installed script, standard input, signals and
the services as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from clirun import run_in_process, without
from conftest import DATA, parse_trusted, shape
from servers import listener

from uws_adapter import Emulator, UwsClient, __version__, generated_devices, parse_callback, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT


def run(args: List[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(args, cwd, without((), ("UWS_TOKEN", "UWS_ADAPTER_DEBUG"), **env))


def test_prints_the_documented_example(tmp_path: Path, doc_request: bytes) -> None:
    result = run(["envelope", "restore", "--device", "ESN:09611822299", "--token", "current_session_token"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert shape(parse_trusted(result.stdout)) == shape(parse_trusted(doc_request))


def test_token_from_the_environment_and_devices_from_a_file(tmp_path: Path) -> None:
    result = run(
        ["envelope", "suspend", "--devices-file", str(DATA / "devices.csv"), "--device", "MDN:5551234567"],
        tmp_path,
        UWS_TOKEN="from-env",
    )
    assert result.returncode == 0, result.stderr
    root = parse_trusted(result.stdout)
    assert root.findtext(".//{http://nphase.com/unifiedwebservice/v2}token") == "from-env"
    kinds = [k.text for k in root.iter("{*}Kind")]
    assert kinds == ["MDN", "IMEI", "ICCID", "ESN", "MEID"]
    assert root.find(".//{*}Suspend") is not None


def test_query_selection(tmp_path: Path) -> None:
    result = run(
        [
            "envelope",
            "restore",
            "--account",
            "0000123456-00001",
            "--service-plan",
            "Plan",
            "--custom-field",
            "CustomField2=SuperVend",
            "--token",
            "t",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "<nph:AccountName>0000123456-00001</nph:AccountName>" in result.stdout
    assert "<Name>CustomField2</Name><Value>SuperVend</Value>" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["envelope", "restore", "--device", "IMEI:12X", "--token", "t"],
            "--device 'IMEI:12X': identifier: '12X' is not a valid IMEI",
        ),
        (["envelope", "restore", "--device", "ESN:09611822299"], "--token: a session token is required"),
        (["envelope", "restore", "--token", "t"], "selection: no devices, account, device group"),
        (
            ["envelope", "restore", "--device", "ESN:09611822299", "--account", "1", "--token", "t"],
            "account: UWS forbids AccountName beside a device list",
        ),
        (
            ["envelope", "suspend", "--device", "ESN:09611822299", "--with-billing", "--token", "t"],
            "unrecognized arguments: --with-billing",  # not offered: UWS has no withBilling
        ),
        (
            ["envelope", "restore", "--custom-field", "CustomField9=x", "--account", "1", "--token", "t"],
            "'CustomField9' is not a custom field",
        ),
        (["envelope", "restore", "--devices-file", "nope.csv", "--token", "t"], "cannot read nope.csv"),
        # a selection's value is refused naming the option it was typed in, not the model's field
        (["envelope", "restore", "--account", "", "--token", "t"], "error: --account: is empty"),
        (["envelope", "restore", "--group", "", "--token", "t"], "error: --group: is empty"),
        (["rest-body", "restore", "--service-plan", "p\x01"], "error: --service-plan: has a character XML cannot"),
        (["envelope", "pause"], "invalid choice: 'pause'"),
        (["rest-body"], "the following arguments are required: ACTION"),
        (["envelope", "restore", "--bogus"], "unrecognized arguments: --bogus"),
    ],
    ids=[
        "bad-identifier",
        "no-token",
        "no-selector",
        "mixed",
        "with-billing",
        "custom-field-name",
        "missing-file",
        "empty-account",
        "empty-group",
        "control-in-plan",
        "bad-action",
        "no-action",
        "unknown-option",
    ],
)
def test_errors_are_one_line_exit_2_no_traceback(tmp_path: Path, args: List[str], message: str) -> None:
    result = run(args, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("uws-adapter: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_help(tmp_path: Path) -> None:
    version = run(["--version"], tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"uws-adapter {__version__}")
    helped = run(["envelope", "--help"], tmp_path)
    assert helped.returncode == 0
    assert "--devices-file" in helped.stdout


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("uws-adapter")
    result = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"uws-adapter {__version__}"), result.stderr


@pytest.mark.parametrize(
    ("name", "request_id"),
    [("doc-rest-restore-callback.json", "595f5c44-c31c-4552-8670-020a1545a84d"),
     ("suspend-callback-one-data.xml", "7f0e9a40-0000-4000-8000-000000000001")],
    ids=["rest-json", "soap-xml"],
)  # fmt: skip
def test_parse_prints_the_json_form(tmp_path: Path, name: str, request_id: str) -> None:
    result = run(["parse", str(DATA / name)], tmp_path)
    assert result.returncode == 0, result.stderr
    form = json.loads(result.stdout)
    assert form["request_id"] == request_id
    assert form["succeeded"] is True
    assert "s3cret" not in result.stdout


def test_parse_repair_and_conversion_from_stdin(tmp_path: Path) -> None:
    document = (DATA / "doc-restore-callback.xml").read_text()
    strict = subprocess.run([sys.executable, "-m", "uws_adapter", "parse", "-"], input=document, capture_output=True,
                            text=True, cwd=tmp_path, check=False)  # fmt: skip
    assert strict.returncode == 2
    assert "--repair" in strict.stderr
    assert len(strict.stderr.splitlines()) == 1
    to_rest = subprocess.run([sys.executable, "-m", "uws_adapter", "parse", "--repair", "--to", "rest", "-"],
                             input=document, capture_output=True, text=True, cwd=tmp_path, check=False)  # fmt: skip
    assert to_rest.returncode == 0, to_rest.stderr
    body = json.loads(to_rest.stdout)
    assert body["deviceResponse"] == {"restoreResponse": {"restored": True}}
    rest_file = tmp_path / "cb.json"
    rest_file.write_text(to_rest.stdout)
    to_soap = run(["parse", "--to", "soap", str(rest_file)], tmp_path)
    assert to_soap.returncode == 0, to_soap.stderr
    assert "<Restore/>" in to_soap.stdout
    assert "2c90bd28-ece4-42ef-9f02-7e3bd4fbff33" in to_soap.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "DOCTYPE is not allowed"), (b'{"status": "Success"}', "requestId is missing"),
     (b"", "callback: empty")],
    ids=["doctype", "no-request-id", "empty"],
)  # fmt: skip
def test_parse_errors_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(content)
    result = run(["parse", str(bad)], tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


def test_suspend_against_the_emulator_prints_the_request_id(tmp_path: Path) -> None:
    lines = generated_devices(3)
    callbacks = listener()
    try:
        with Emulator(devices=lines) as emulator:
            emulator.register_listener(DEFAULT_ACCOUNT, callbacks.url)
            args = ["suspend", "--endpoint", emulator.base_url, "--username", "uws-user", "--timeout", "2,5"]
            args += [arg for line in lines for arg in ("--device", str(line.device))]
            result = run(args, tmp_path, UWS_PASSWORD="uws-password")
            assert result.returncode == 0, result.stderr
            request_id = result.stdout.strip()
            assert {parse_callback(b).request_id for b in callbacks.wait_for(3)} == {request_id}
            assert "uws-password" not in result.stdout + result.stderr
            assert emulator.counters["logins"] == 1
            assert len(emulator.sessions) == 0  # logged out once the request was answered
    finally:
        callbacks.close()


def test_restore_over_rest_logs_out_its_session(tmp_path: Path) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        args = ["restore", "--backend", "rest", "--rest-url", emulator.rest_url, "--device", "ESN:09611822299"]
        environment = {"UWS_USERNAME": "uws-user", "UWS_PASSWORD": "uws-password", "THINGSPACE_CLIENT_ID": "ts-client",
                       "THINGSPACE_CLIENT_SECRET": "ts-secret"}  # fmt: skip
        result = run(args, tmp_path, **environment)
        assert result.returncode == 0, result.stderr
        assert len(emulator.sessions) == 0


def test_connection_refused_and_a_wrong_endpoint_are_said_in_words(tmp_path: Path) -> None:
    from servers import HttpServer, closed_port

    refused = run(["suspend", "--endpoint", f"http://127.0.0.1:{closed_port()}/api/v2", "--username", "u",
                   "--device", "ESN:09611822299"], tmp_path, UWS_PASSWORD="p")  # fmt: skip
    assert refused.returncode != 0
    (error,) = refused.stderr.splitlines()  # one line: the retries are DEBUG, the error counts them
    assert error.startswith("uws-adapter: error: LogIn: connection refused at 'http://127.0.0.1:"), refused.stderr
    assert "(4 attempts); nothing was sent" in error
    assert "NewConnectionError" not in refused.stderr
    assert "Max retries" not in refused.stderr
    not_found = HttpServer(lambda _: (404, "text/html", b"<html>Not Found</html>"))
    try:
        wrong = run(["suspend", "--endpoint", not_found.url + "/wrong", "--username", "u", "--device",
                     "ESN:09611822299"], tmp_path, UWS_PASSWORD="p")  # fmt: skip
    finally:
        not_found.close()
    assert wrong.returncode != 0
    assert "check the endpoint URL" in wrong.stderr
    assert "log in again" not in wrong.stderr


def test_an_account_selection_needs_yes(tmp_path: Path) -> None:
    with Emulator(devices=generated_devices(2)) as emulator:
        args = ["restore", "--account", DEFAULT_ACCOUNT, "--endpoint", emulator.base_url, "--username", "uws-user"]
        refused = run(args, tmp_path, UWS_PASSWORD="uws-password")
        assert refused.returncode == 2
        assert "pass --yes to confirm" in refused.stderr
        assert emulator.counters["requests"] == 0
        confirmed = run([*args, "--yes"], tmp_path, UWS_PASSWORD="uws-password")
        assert confirmed.returncode == 0, confirmed.stderr
        assert len(confirmed.stdout.strip()) == 36


def test_a_fault_is_one_line_and_never_shows_the_password(tmp_path: Path) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        args = ["restore", "--device", "ESN:09611822299", "--endpoint", emulator.base_url, "--username", "uws-user"]
        result = run(args, tmp_path, UWS_PASSWORD="not-the-password")
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1
        assert "InvalidCredentials" in result.stderr
        assert "not-the-password" not in result.stderr


def test_the_emulator_command_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "uws_adapter", "emulator", "--port", "0", "--devices", "5"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "emulator: UWS at http://127.0.0.1:" in first, first
        base_url, rest_url = first.split(" at ")[1].split(",")[0], first.split(" at ")[2].split()[0]
        client = UwsClient(base_url=base_url, username="uws-user", password="uws-password", timeout=(2.0, 5.0))
        assert client.suspend(select(account=DEFAULT_ACCOUNT))
        rest = subprocess.run(
            [sys.executable, "-m", "uws_adapter", "restore", "--backend", "rest", "--rest-url", rest_url,
             "--account", DEFAULT_ACCOUNT, "--yes"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "UWS_USERNAME": "uws-user", "UWS_PASSWORD": "uws-password",
                 "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": "ts-secret"},
        )  # fmt: skip
        assert rest.returncode == 0, rest.stderr
        assert len(rest.stdout.strip()) == 36  # a requestId
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "Traceback" not in stderr


def test_rest_body_prints_the_documented_fields(tmp_path: Path) -> None:
    iccid = "89148000000800784259"
    result = run(
        ["rest-body", "suspend", "--device", f"ICCID:{iccid}", "--account", "0000123456-00001", "--with-billing"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "accountName": "0000123456-00001",
        "devices": [{"deviceIds": [{"id": iccid, "kind": "iccid"}]}],
        "withBilling": True,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rest-body", "restore", "--device", "ESN:09611822299", "--group", "g"], "cannot be combined with group"),
        (["rest-body", "restore", "--with-billing", "--account", "1"], "unrecognized arguments: --with-billing"),
        (["suspend", "--device", "ESN:09611822299", "--with-billing", "--username", "u"], "no withBilling field"),
        (
            ["restore", "--backend", "rest", "--device", "ESN:09611822299"],
            "username: the UWS login has a password but no username",
        ),
        (["bridge"], "--legacy-login: no legacy login"),
        (["bridge", "--legacy-login", "nopassword"], "--legacy-login: is not NAME:PASSWORD"),
    ],
    ids=["mixed", "billing-on-restore", "billing-on-soap", "no-login", "bridge-no-login", "bridge-bad-login"],
)
def test_rest_and_bridge_errors_are_one_line(tmp_path: Path, args: List[str], message: str) -> None:
    result = run(args, tmp_path, UWS_PASSWORD="p")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_suspend_over_rest_from_a_config_file_then_status(tmp_path: Path) -> None:
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        config = tmp_path / "uws-adapter.ini"
        config.write_text(
            f"[uws-adapter]\nbackend = rest\nrest_url = {emulator.rest_url}\nusername = uws-user\n"
            "client_id = ts-client\ntimeout = 2,5\n"
        )
        args = ["suspend", "--config", str(config), "--with-billing", "--db", str(tmp_path / "c.db")]
        args += [arg for line in lines for arg in ("--device", str(line.device))]
        result = run(args, tmp_path, UWS_PASSWORD="uws-password", THINGSPACE_CLIENT_SECRET="ts-secret")
        assert result.returncode == 0, result.stderr
        assert all(line.state == "Suspended" for line in lines)
        status = run(["status", result.stdout.strip(), "--db", str(tmp_path / "c.db"), "--json"], tmp_path)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["total"] == 2


def test_the_bridge_command_serves_legacy_soap_over_rest_until_interrupted(tmp_path: Path) -> None:
    lines = generated_devices(2)
    with Emulator(devices=lines) as emulator:
        environment = {
            **os.environ, "UWS_ADAPTER_REST_URL": emulator.rest_url, "UWS_USERNAME": "uws-user",
            "UWS_PASSWORD": "uws-password", "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": "ts-secret",
            "UWS_CALLBACK_USERNAME": "bridge", "UWS_CALLBACK_PASSWORD": "bridge-secret",
            "UWS_BRIDGE_LEGACY_LOGIN": "legacy:legacy-secret",
        }  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "uws_adapter", "bridge", "--port", "0", "--db", str(tmp_path / "b.db")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("bridge: UWS at http://127.0.0.1:"), first
            client = UwsClient(
                base_url=first.split(" at ")[1].split(",")[0], username="legacy", password="legacy-secret",
                timeout=(2.0, 5.0),
            )  # fmt: skip
            assert client.suspend(select([line.device for line in lines]))
            assert all(line.state == "Suspended" for line in lines)
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=10)
        assert process.returncode in (0, 130)  # waitress ends its loop cleanly on SIGINT
        assert "Traceback" not in stderr


def test_a_trusted_proxy_that_is_not_an_address_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run(
        ["bridge", "--legacy-login", "legacy:pw", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "proxy.lan",
         "--db", str(tmp_path / "b.db")],
        tmp_path, UWS_CALLBACK_USERNAME="cb", UWS_CALLBACK_PASSWORD="cb-secret",
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--trusted-proxy: 'proxy.lan' is not an IP address or network" in result.stderr
    assert not (tmp_path / "b.db").exists()


@pytest.mark.parametrize("backend", ["soap", "rest"])
def test_a_refused_login_says_what_to_check_and_the_lockout_in_one_line(tmp_path: Path, backend: str) -> None:
    with Emulator(devices=generated_devices(1)) as emulator:
        args = ["suspend", "--backend", backend, "--endpoint", emulator.base_url, "--rest-url", emulator.rest_url,
                "--username", "uws-user", "--device", "ESN:09611822299"]  # fmt: skip
        result = run(args, tmp_path, UWS_PASSWORD="not-the-password", THINGSPACE_CLIENT_ID="ts-client",
                     THINGSPACE_CLIENT_SECRET="ts-secret")  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "InvalidCredentials: wrong username or password; check --username and --password" in line
    assert "five failed logins in a row lock the account" in line
    assert "not-the-password" not in result.stderr + result.stdout


def test_a_devices_file_is_read_no_further_than_one_request_takes(tmp_path: Path) -> None:
    # 10,001 devices, then a row that is not one: the file was read to its end (and held in memory:
    # ten million rows took 3.8 GB and minutes) before its count was refused; now its reading stops
    # at the row past what one request takes, and the error names that row.
    rows = "".join(f"IMEI,{350000000000000 + n}\n" for n in range(10_001))
    (tmp_path / "many.csv").write_text("kind,identifier\n" + rows + "IMEI,not-a-device\n")
    result = run(["envelope", "restore", "--devices-file", "many.csv", "--token", "t"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "uws-adapter: error: many.csv line 10002: more than 10,000 devices; split it into files of at most "
        "10,000 devices\n"
    )
