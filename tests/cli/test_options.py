"""The CLI as a new user meets it: usage, help, the token rule, parse's detection and redaction,
URLs checked before any I/O, and service-plan-only selections (REST) behind the confirmation."""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, DATA, PASSWORD, USER
from test_cli import run

from uws_adapter import Emulator, UwsClient, generated_devices
from uws_adapter.cli.main import build_parser

REST_LOGIN = {"UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_ID": CLIENT_ID,
              "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(4)) as served:
        yield served


def test_a_bare_call_prints_its_usage_once(tmp_path: Path) -> None:
    result = run([], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("usage: uws-adapter") == 1
    assert "uws-adapter: uws-adapter" not in result.stderr
    assert "listeners" in result.stderr  # the commands are listed


def test_a_usage_error_names_the_command_once(tmp_path: Path) -> None:
    result = run(["rest-body", "suspend", "--bogus"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("uws-adapter") == 2  # the line's prefix and the --help hint
    assert "unrecognized arguments: --bogus" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["receiver", "--prot", "8081"], "receiver: unrecognized arguments: --prot 8081 (did you mean --port?); "
                                         "see 'uws-adapter receiver --help'"),
        (["listeners", "list", "1", "--jsn"], "listeners list: unrecognized arguments: --jsn (did you mean --json?); "
                                              "see 'uws-adapter listeners list --help'"),
        (["status", "x", "y"], "status: unrecognized arguments: y; see 'uws-adapter status --help'"),
    ],
)  # fmt: skip
def test_a_mistyped_option_names_its_command_and_the_option_meant(
    tmp_path: Path, arguments: List[str], expected: str
) -> None:
    result = run(arguments, tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"uws-adapter: error: {expected}\n"


def _commands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple]:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path}{name}", sub
                yield from _commands(sub, f"{path}{name} ")


def test_every_command_has_a_description() -> None:
    missing = [name for name, sub in _commands(build_parser()) if not sub.description]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "shown"),
    [(["receiver"], "(default: 8081)"), (["emulator"], "(default: 127.0.0.1)"), (["wait"], "(default: 600)"),
     (["listeners", "register"], "(default: CarrierService)"), (["bridge"], "bridge.db)")],
    ids=["receiver-port", "emulator-host", "wait-timeout", "listeners-service", "bridge-db"],
)  # fmt: skip
def test_help_shows_the_defaults(tmp_path: Path, command: List[str], shown: str) -> None:
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert shown in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    "command",
    [["receiver"], ["bridge"], ["emulator"], ["envelope"], ["restore"], ["listeners", "register"]],
    ids=["receiver", "bridge", "emulator", "envelope", "restore", "listeners-register"],
)
def test_help_never_shows_a_secret_from_the_environment(tmp_path: Path, command: List[str]) -> None:
    secrets = {name: f"secret-of-{name.lower()}" for name in (
        "UWS_CALLBACK_PASSWORD", "UWS_CALLBACK_PREVIOUS_PASSWORD", "UWS_BRIDGE_LEGACY_LOGIN",
        "UWS_BRIDGE_LISTENER_LOGIN", "UWS_TOKEN", "UWS_PASSWORD", "THINGSPACE_CLIENT_SECRET")}  # fmt: skip
    secrets["UWS_CALLBACK_DB"] = secrets["UWS_BRIDGE_DB"] = "postgresql://u:secret-of-db@127.0.0.1/x"
    result = run([*command, "--help"], tmp_path, **secrets)
    assert result.returncode == 0, result.stderr
    assert "secret-of-" not in result.stdout


def test_billing_options_are_offered_only_where_accepted(tmp_path: Path) -> None:
    assert "--with-billing" not in run(["envelope", "--help"], tmp_path).stdout
    assert "--with-billing" not in run(["rest-body", "restore", "--help"], tmp_path).stdout
    assert "--with-billing" in run(["rest-body", "suspend", "--help"], tmp_path).stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"[1,2]", "the JSON document is an array, not an object"), (b"  \n 42", "the JSON document is a number,"),
     (b'\xef\xbb\xbf {"requestId": ', "not valid JSON"), (b"\n<CallbackRequest", "not well-formed XML")],
    ids=["json-list", "json-number-after-blanks", "bom-then-broken-json", "broken-xml"],
)  # fmt: skip
def test_parse_detects_the_format_by_the_first_non_blank_character(
    tmp_path: Path, content: bytes, message: str
) -> None:  # fmt: skip
    document = tmp_path / "doc"
    document.write_bytes(content)
    result = run(["parse", str(document)], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "target", "secret"),
    [("suspend-callback-one-data.xml", "rest", "s3cret"), ("doc-rest-restore-callback.json", "soap", ">password<")],
    ids=["soap-to-rest", "rest-to-soap"],
)  # fmt: skip
def test_parse_to_redacts_the_password_unless_revealed(tmp_path: Path, name: str, target: str, secret: str) -> None:
    redacted = run(["parse", "--to", target, str(DATA / name)], tmp_path)
    assert redacted.returncode == 0, redacted.stderr
    assert secret not in redacted.stdout
    assert "***" in redacted.stdout
    revealed = run(["parse", "--to", target, "--reveal-password", str(DATA / name)], tmp_path)
    assert revealed.returncode == 0, revealed.stderr
    assert secret in revealed.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [(["--endpoint", "not-a-url"], {}, "--endpoint: 'not-a-url' is not an http(s) URL"),
     (["--backend", "rest", "--rest-url", "http://127.0.0.1:99999/api"], REST_LOGIN, "--rest-url: "),
     ([], {"UWS_ENDPOINT": "127.0.0.1:8080/api/v2"}, "UWS_ENDPOINT: "),
     (["--token", "t", "--username", "u"], {}, "--token: given with --username/--password"),
     (["--backend", "rest", "--token", "t"], REST_LOGIN, "--token: is a UWS session token")],
    ids=["endpoint-without-scheme", "rest-url-bad-port", "endpoint-from-environment", "token-and-login",
         "token-on-rest"],
)  # fmt: skip
def test_refused_before_anything_is_sent(tmp_path: Path, args: List[str], env: dict, message: str) -> None:  # type: ignore[type-arg]
    result = run(["restore", "--device", "ESN:09611822299", *args], tmp_path, **{"UWS_PASSWORD": "p", **env})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "may have been carried out" not in result.stderr


def test_an_explicit_token_wins_over_a_login_in_the_environment(tmp_path: Path, emulator: Emulator) -> None:
    client = UwsClient(base_url=emulator.base_url, username=USER, password=PASSWORD, timeout=(2.0, 5.0))
    token = client.ensure_login()
    args = ["restore", "--endpoint", emulator.base_url, "--device", str(emulator.devices[0].device), "--token", token]
    # A wrong login in the environment would fail (and count towards a lockout) if it were used.
    result = run(args, tmp_path, UWS_USERNAME=USER, UWS_PASSWORD="wrong-password")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 36
    assert emulator.counters["failed_logins"] == 0
    assert emulator.counters["logins"] == 1  # ours above only


def test_uws_token_from_the_environment_is_used_only_without_a_login(tmp_path: Path, emulator: Emulator) -> None:
    args = ["restore", "--endpoint", emulator.base_url, "--device", str(emulator.devices[0].device)]
    result = run(args, tmp_path, UWS_USERNAME=USER, UWS_PASSWORD=PASSWORD, UWS_TOKEN="stale-token")
    assert result.returncode == 0, result.stderr
    assert emulator.counters["logins"] == 1  # the login, not the stale token


def test_rest_body_takes_a_service_plan_alone(tmp_path: Path) -> None:
    result = run(["rest-body", "restore", "--service-plan", "M2M Flex"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"servicePlan": "M2M Flex"}


def test_a_service_plan_alone_is_a_rest_selection_behind_yes(tmp_path: Path, emulator: Emulator) -> None:
    args = ["suspend", "--backend", "rest", "--rest-url", emulator.rest_url, "--service-plan", "M2M Flex"]
    refused = run(args, tmp_path, **REST_LOGIN)
    assert refused.returncode == 2
    assert "suspend would reach every line of plan M2M Flex; pass --yes to confirm" in refused.stderr
    assert emulator.counters["rest_requests"] == 0
    confirmed = run([*args, "--yes"], tmp_path, **REST_LOGIN)
    assert confirmed.returncode == 0, confirmed.stderr
    assert all(line.state == "Suspended" for line in emulator.devices)


def test_uws_still_refuses_a_service_plan_alone(tmp_path: Path, emulator: Emulator) -> None:
    args = ["suspend", "--endpoint", emulator.base_url, "--service-plan", "M2M Flex", "--yes"]
    result = run(args, tmp_path, UWS_USERNAME=USER, UWS_PASSWORD=PASSWORD)
    assert result.returncode == 2
    assert "UWS needs an account or a device group" in result.stderr
    assert emulator.counters["logins"] == 0


@pytest.mark.parametrize("answer", ["y", "Y", "yes", "n", ""], ids=["y", "Y", "yes", "n", "empty"])
def test_the_confirmation_prompt_takes_y(tmp_path: Path, emulator: Emulator, answer: str) -> None:
    primary, secondary = pty.openpty()  # a terminal on standard input: the command asks
    args = [sys.executable, "-m", "uws_adapter", "restore", "--backend", "rest", "--rest-url", emulator.rest_url,
            "--service-plan", "M2M Flex"]  # fmt: skip
    try:
        process = subprocess.Popen(args, cwd=tmp_path, stdin=secondary, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, **REST_LOGIN})  # fmt: skip
        os.write(primary, f"{answer}\n".encode())
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert "[y/N]" in stderr
    if answer in ("y", "Y", "yes"):
        assert process.returncode == 0, stderr
        assert len(stdout.strip()) == 36
    else:
        assert process.returncode == 2
        assert "confirmation: not given; nothing was sent" in stderr
        # Only the device list was asked (the count in the question): no line was acted on.
        assert "line(s) now)? [y/N]" in stderr
        assert all(line.actions_today == 0 for line in emulator.devices)


def test_a_verb_group_lists_its_verbs_as_declared_with_the_shared_options_after_their_own() -> None:
    from uws_adapter.cli.options import Verbs

    def shared(verb: argparse.ArgumentParser) -> None:
        verb.add_argument("--shared")

    group = Verbs("a group", common=shared)

    @group.verb("second", "declared first")
    def _second(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--own")

    group.verb("first", "declared second")(lambda parser: None)
    parser = argparse.ArgumentParser(prog="x")
    group(parser)
    assert parser.description == "a group"
    assert parser.format_help().index("second") < parser.format_help().index("first")
    verb = parser._subparsers._group_actions[0].choices["second"]  # type: ignore[union-attr, index]
    assert [a.dest for a in verb._actions if a.option_strings][1:] == ["own", "shared"]
    assert vars(parser.parse_args(["second", "--own", "1", "--shared", "2"])) == {"verb": "second", "own": "1",
                                                                                "shared": "2"}  # fmt: skip
    with pytest.raises(SystemExit):  # one verb is required
        parser.parse_args([])


def test_a_lost_answer_is_one_line_not_also_a_log_line(tmp_path: Path) -> None:
    # The transport's INFO line ("... ConnectionError") came before the error line, and the error
    # said twice that the carrier may have acted.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def read_then_close() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)

    threading.Thread(target=read_then_close, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v2"
    try:
        result = run(["suspend", "--device", "IMEI:350000000000000", "--endpoint", url, "--token", "t"], tmp_path)
    finally:
        listener.close()
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.count("before sending") == 1
    assert "may have been carried out" in result.stderr


@pytest.mark.parametrize("flag", ["--with-billing", "--without-billing"])
def test_billing_on_the_uws_backend_is_named_by_its_option(tmp_path: Path, flag: str) -> None:
    # It was reported under the library's field, "with_billing: ...; leave it unset for SOAP".
    args = ["suspend", "--device", "IMEI:350000000000000", flag, "--endpoint", "http://127.0.0.1:9/api/v2"]
    result = run([*args, "--token", "t"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"uws-adapter: error: {flag}: UWS ChangeDeviceState has no withBilling field; drop it, or give --backend rest\n"
    )
