"""Backend selection by configuration, and one code path for both backends: the same function
provisions over UWS or REST, the callbacks arrive at the receiver as the same dataclasses, and
the tracker follows both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from servers import WaitressServer

from uws_adapter import (
    Emulator,
    InputError,
    Provisioner,
    RestClient,
    UwsClient,
    connect,
    generated_devices,
    load_settings,
    select,
)
from uws_adapter.emulator.core import DEFAULT_ACCOUNT
from uws_adapter.receiver.app import Receiver, server_options
from uws_adapter.store.sqlite import Store
from uws_adapter.tracking import wait_for


def environment(backend: str, emulator: Emulator) -> Dict[str, str]:
    return {
        "UWS_ADAPTER_BACKEND": backend,
        "UWS_ENDPOINT": emulator.base_url,
        "UWS_ADAPTER_REST_URL": emulator.rest_url,
        "UWS_USERNAME": USER,
        "UWS_PASSWORD": PASSWORD,
        "THINGSPACE_CLIENT_ID": CLIENT_ID,
        "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET,
    }


def test_file_then_environment_then_arguments(tmp_path: Path) -> None:
    config = tmp_path / "settings.ini"
    config.write_text("[uws-adapter]\nbackend = rest\nusername = from-file\npassword = file-secret\ntimeout = 3,30\n")
    settings = load_settings(config, environ={"UWS_USERNAME": "from-env"})
    assert (settings.backend, settings.username, settings.password, settings.timeout) == (
        "rest", "from-env", "file-secret", (3.0, 30.0),
    )  # fmt: skip
    assert load_settings(environ={"UWS_ADAPTER_CONFIG": str(config)}, backend="soap").backend == "soap"
    assert "file-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[uws-adapter]\nbackend = grpc\n", {}, "backend: 'grpc' is not a backend"),
        ("[uws-adapter]\nendpoint = x\n", {}, r"\[uws-adapter\] endpoint: unknown setting"),
        ("[uws-adapter]\ntimeout = soon\n", {}, "'soon' is not CONNECT,READ seconds"),
        ("not ini", {}, r"line 1 comes before any \[section\] header"),
        ("", {"UWS_ADAPTER_TIMEOUT": "0,5"}, r"^UWS_ADAPTER_TIMEOUT: \(0.0, 5.0\) is not \(connect, read\) seconds"),
    ],
    ids=["backend", "unknown-key", "timeout", "not-ini", "zero-timeout"],
)
def test_bad_settings_name_the_setting(tmp_path: Path, text: str, environ: Dict[str, str], message: str) -> None:
    config = tmp_path / "settings.ini"
    config.write_text(text)
    with pytest.raises(InputError, match=message):
        load_settings(config, environ=environ)


def test_connect_picks_the_backend_and_refuses_incomplete_settings() -> None:
    with Emulator() as emulator:
        assert isinstance(connect(load_settings(environ=environment("soap", emulator))), UwsClient)
        assert isinstance(connect(load_settings(environ=environment("rest", emulator))), RestClient)
        incomplete = {**environment("rest", emulator), "THINGSPACE_CLIENT_SECRET": ""}
        with pytest.raises(InputError, match="the REST backend needs OAuth2 keys"):
            connect(load_settings(environ=incomplete))


def suspend_everything(client: Provisioner, devices: List[Any]) -> str:
    """Application code: it does not know which backend it drives."""
    return client.suspend(select(devices))


def run_backend(backend: str, tmp_path: Path) -> List[Dict[str, Any]]:
    lines = generated_devices(5)
    with Emulator(devices=lines) as emulator, Store(tmp_path / f"{backend}.db") as store:
        receiver = Receiver(store, username="listener", password="listener-secret")
        server = WaitressServer(receiver, **server_options(receiver, threads=4))
        url = f"{server.url}/callbacks"
        try:
            client = connect(load_settings(environ=environment(backend, emulator)), store=store)
            if isinstance(client, RestClient):
                client.register_callback(
                    DEFAULT_ACCOUNT, "CarrierService", url, username="listener", password="listener-secret"
                )
            else:
                emulator.register_listener(DEFAULT_ACCOUNT, url, "listener", "listener-secret")
            request_id = suspend_everything(client, [line.device for line in lines])
            status = wait_for(store, [request_id], timeout=20)[1][request_id]
            assert (status.complete, len(status.succeeded), status.action) == (True, 5, "Suspend")
            assert store.counts()["requests"] == 1
            forms = []
            for event in store.iter_events(request_id=request_id):
                form = event.callback.to_dict()
                del form["request_id"]
                forms.append(form)
            return sorted(forms, key=lambda form: str(form["devices"]))
        finally:
            server.close()
            receiver.close()


def test_both_backends_run_the_same_code_and_give_the_same_callbacks(tmp_path: Path) -> None:
    soap, rest = run_backend("soap", tmp_path), run_backend("rest", tmp_path)
    assert len(soap) == 5
    assert soap == rest


SECRET = "hunter2-Qx7"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"[uws-adapter]\nusername = u\npassword {SECRET}\n", r"line 3 is not KEY = VALUE"),
        (f"password = {SECRET}\n[uws-adapter]\n", r"line 1 comes before any \[section\] header"),
        (f"[uws-adapter]\npasword = {SECRET}\n", r"line 2: \[uws-adapter\] pasword: unknown setting"),
        (f"[uws-adapter]\n\npassword {SECRET} = x\n", r"line 3: \[uws-adapter\] this key: unknown setting"),
        (f"[uws-adapter]\npassword = a\npassword = {SECRET}\n", r"line 3: \[uws-adapter\] password is set twice"),
        (f"[uws-adapter]\nclient_secret = {SECRET}\n  {SECRET}\n[x\n", r"line 4 is not KEY = VALUE"),
    ],
    ids=["no-equals", "before-section", "unknown-key", "mangled-key", "duplicate", "broken-after-continuation"],
)
def test_settings_errors_never_show_a_secret(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "settings.ini"
    config.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_settings(config, environ={})
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_a_settings_file_that_is_not_utf8_is_refused_without_its_text(tmp_path: Path) -> None:
    config = tmp_path / "settings.ini"
    config.write_bytes(f"[uws-adapter]\npassword = {SECRET}\xff\n".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8") as info:
        load_settings(config, environ={})
    assert SECRET not in str(info.value)
    assert info.value.__context__ is None


def test_a_settings_file_is_read_within_a_bound(tmp_path: Path) -> None:
    # /dev/zero as a settings file was read until memory ran out.
    config = tmp_path / "settings.ini"
    config.write_text(f"[uws-adapter]\npassword = {SECRET}\n" + "#" * (1024 * 1024) + "\n")
    with pytest.raises(InputError, match="is over 1,048,576 characters: not a settings file") as info:
        load_settings(config, environ={})
    assert SECRET not in str(info.value)


def test_the_answer_limits_come_from_file_environment_and_arguments(tmp_path: Path) -> None:
    config = tmp_path / "settings.ini"
    config.write_text("[uws-adapter]\ndeadline = 30\nmax_answer_bytes = 65536\n")
    settings = load_settings(config, environ={})
    assert (settings.deadline, settings.max_answer_bytes) == (30.0, 65536)
    settings = load_settings(config, environ={"UWS_ADAPTER_DEADLINE": "12.5"}, max_answer_bytes=2048)
    assert (settings.deadline, settings.max_answer_bytes) == (12.5, 2048)
    client = connect(replace(settings, username="u", password=SECRET))
    assert (client.deadline, client.max_answer_bytes) == (12.5, 2048)
    assert SECRET not in repr(client)
    assert SECRET not in str(settings)
    config.write_text("[uws-adapter]\nmax_answer_bytes = lots\n")
    with pytest.raises(InputError, match=r"line 2: \[uws-adapter\] max_answer_bytes: 'lots' is not a byte count"):
        load_settings(config, environ={})
    with pytest.raises(InputError, match=r"^UWS_ADAPTER_DEADLINE: -1.0 is not a positive number of seconds"):
        load_settings(environ={"UWS_ADAPTER_DEADLINE": "-1"})


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def readme_ini_example() -> str:
    """The first ```ini block of the configuration guide's Configuration section, as written there."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("\n## Configuration") :]
    start = section.index("```ini\n") + len("```ini\n")
    return section[start : section.index("```", start)]


def test_the_guide_example_loads_as_written_with_its_inline_comments(tmp_path: Path) -> None:
    example = readme_ini_example()
    config = tmp_path / "uws-adapter.ini"
    config.write_text(example, encoding="utf-8")
    settings = load_settings(config, environ={})
    # What each line means, read by hand: the value is the text before an inline comment.
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.lstrip()[:1] in (";", "#", "["):
            continue
        written = value.split(" ;")[0].split(" #")[0].strip()
        loaded = getattr(settings, key.strip())
        if isinstance(loaded, tuple):  # timeout = CONNECT,READ
            assert loaded == tuple(float(part) for part in written.split(",")), key
        elif isinstance(loaded, (int, float)):  # deadline, max_answer_bytes
            assert loaded == type(loaded)(written), key
        else:
            assert loaded == written, key
            assert ";" not in str(loaded)
            assert "#" not in str(loaded)


@pytest.mark.parametrize(
    ("line", "expected"),
    [("username = uws-user ; the UWS login", "uws-user"), ("username = uws-user # the UWS login", "uws-user"),
     ("username = uws-user;not-a-comment", "uws-user;not-a-comment")],
    ids=["semicolon", "hash", "no-space-before"],
)  # fmt: skip
def test_inline_comments_are_stripped(tmp_path: Path, line: str, expected: str) -> None:
    config = tmp_path / "settings.ini"
    config.write_text(f"[uws-adapter]\n{line}\n")
    assert load_settings(config, environ={}).username == expected


# The services' settings objects (issue 18 item 5) -------------------------------------------------


from uws_adapter.config import Settings  # noqa: E402
from uws_adapter.settings.receiver import ReceiverSettings  # noqa: E402
from uws_adapter.settings.services import BridgeSettings, EmulatorSettings  # noqa: E402


def test_a_service_reads_its_section_then_the_environment_then_arguments(tmp_path: Path) -> None:
    config = tmp_path / "services.ini"
    config.write_text("[receiver]\nport = 9001\nusername = from-file\npassword = file-pw\nthreads = 4\n"
                      "[bridge]\nregister = 0000123456-00001, 0000123456-00002\npublic_url = https://bridge.example\n")  # fmt: skip
    settings = ReceiverSettings.load(config, environ={"UWS_CALLBACK_USERNAME": "from-env"}, threads=8)
    assert (settings.port, settings.username, settings.password, settings.threads) == (9001, "from-env", "file-pw", 8)
    assert "file-pw" not in repr(settings)
    assert "file-pw" not in str(settings)
    bridge = BridgeSettings.load(config, environ={"UWS_BRIDGE_LEGACY_LOGIN": "legacy:pw", "UWS_CALLBACK_USERNAME": "u",
                                                  "UWS_CALLBACK_PASSWORD": "p"})  # fmt: skip
    assert bridge.register == ("0000123456-00001", "0000123456-00002")


def test_every_service_takes_the_callback_credentials_from_the_receivers_variables() -> None:
    # One home (settings/receiver.py callback_login_options): the receiver checks what the emulator
    # writes into its callbacks and what the bridge is called back with, by default.
    env = {"UWS_CALLBACK_USERNAME": "cb-user", "UWS_CALLBACK_PASSWORD": "cb-pw", "UWS_BRIDGE_LEGACY_LOGIN": "l:pw"}
    receiver, bridge = ReceiverSettings.load(environ=env), BridgeSettings.load(environ=env)
    emulator = EmulatorSettings.load(environ=env)
    assert (receiver.username, receiver.password) == (bridge.username, bridge.password) == ("cb-user", "cb-pw")
    assert (emulator.listener_username, emulator.listener_password) == ("cb-user", "cb-pw")


@pytest.mark.parametrize(
    ("settings", "values"),
    [(ReceiverSettings, {"password": SECRET, "previous_password": SECRET + "2", "username": "u",
                         "db": f"postgresql://uws:{SECRET}@db/uws"}),
     (BridgeSettings, {"legacy_login": f"legacy:{SECRET}", "legacy_listener_login": f"l:{SECRET}",
                       "username": "u", "password": SECRET}),
     (EmulatorSettings, {"listener_password": SECRET, "listener_username": "u", "user": f"n:{SECRET}",
                         "client": f"c:{SECRET}"})],
    ids=["receiver", "bridge", "emulator"],
)  # fmt: skip
def test_no_settings_repr_shows_a_secret(settings: Any, values: Dict[str, str]) -> None:
    made = settings(**values)
    assert SECRET not in repr(made)
    assert "***" in repr(made)


@pytest.mark.parametrize(
    ("settings", "values"),
    [(Settings, {"soap_url": f"https://u:{SECRET}@uws.example/api/v2",
                 "rest_url": f"https://u:{SECRET}@rest.example/api?token={SECRET}"}),
     (BridgeSettings, {"legacy_login": "legacy:pw", "username": "u", "password": "p", "legacy_listener": f"https://l:{SECRET}@legacy.example/cb",
                       "public_url": f"https://p:{SECRET}@bridge.example"}),
     (EmulatorSettings, {"listener": f"http://l:{SECRET}@127.0.0.1:9/cb"})],
    ids=["client", "bridge", "emulator"],
)  # fmt: skip
def test_no_settings_repr_shows_a_password_in_a_url(settings: Any, values: Dict[str, str]) -> None:
    # A URL may carry user:password@ (and a token in its query): shown as every URL is shown.
    made = settings(**values)
    assert SECRET not in repr(made)
    assert SECRET not in str(made)
    assert "***@" in repr(made)


def test_settings_are_frozen_and_checked_in_code_too() -> None:
    settings = ReceiverSettings(allow_anonymous=True)
    with pytest.raises(Exception, match="cannot assign"):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(InputError, match=r"^port: 70000 is out of range; give 1 to 65535"):
        ReceiverSettings(allow_anonymous=True, port=70000)
    # Python refuses to write an integer of over 4,300 digits: the refusal was a raw ValueError.
    with pytest.raises(InputError, match=r"^port: an integer of 16,610 bits is out of range; give 1 to 65535"):
        ReceiverSettings(allow_anonymous=True, port=10**5000)
    for huge in (10**400, -(10**400)):  # past any float: a raw OverflowError where no upper bound was set
        with pytest.raises(InputError, match=r"^lockout_seconds: an integer of 1,329 bits is out of range"):
            BridgeSettings(lockout_seconds=huge)
    with pytest.raises(InputError, match="would store callbacks from anyone"):
        ReceiverSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [("[uws-adapter]\nbackend = soap\n[reciever]\nport = 1\n",
      r"^config file .*services.ini line 3: \[reciever\] is not a known section; use \[uws-adapter\], \[receiver\], "
      r"\[bridge\] or \[emulator\]"),
     ("[receiver]\n\nport = eighty\n", r"^config file .*services.ini line 3: \[receiver\] port: 'eighty' is not a port"),
     ("[receiver]\nworkers = 65\n", r"line 2: \[receiver\] workers: 65 is out of range; give 1 to 64"),
     ("[DEFAULT]\nport = 1\n", r"line 1: \[DEFAULT\] is not a known section")],
    ids=["misspelled-section", "bad-port", "workers", "default-section"],
)  # fmt: skip
def test_settings_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "services.ini"
    config.write_text(text)
    with pytest.raises(InputError, match=message):
        ReceiverSettings.load(config, environ={"UWS_CALLBACK_USERNAME": "u", "UWS_CALLBACK_PASSWORD": "p"})


def test_an_environment_error_names_the_variable_and_an_argument_error_the_option() -> None:
    with pytest.raises(InputError, match=r"^UWS_CALLBACK_MAX_BODY: 'big' is not a whole number of bytes"):
        ReceiverSettings.load(environ={"UWS_CALLBACK_MAX_BODY": "big", "UWS_CALLBACK_ALLOW_ANONYMOUS": "1"})
    with pytest.raises(InputError, match=r"^--port: 'x' is not a port number"):
        ReceiverSettings.load(environ={"UWS_CALLBACK_ALLOW_ANONYMOUS": "1"}, origins={"port": "--port"}, port="x")


def test_a_username_without_password_is_named_as_such() -> None:
    with pytest.raises(InputError, match=r"^password: the UWS login has a username but no password; set UWS_PASSWORD"):
        connect(load_settings(environ={"UWS_USERNAME": "u"}))
    with pytest.raises(InputError, match=r"^username: no UWS login configured"):
        connect(load_settings(environ={}))


def test_the_workers_settings_file_is_private_and_round_trips(tmp_path: Path) -> None:
    import os
    import stat

    settings = ReceiverSettings(username="u", password=SECRET, db=str(tmp_path / "c.db"), workers=2)
    path = settings.write_private(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ReceiverSettings.for_worker({"UWS_ADAPTER_WORKER_SETTINGS": str(path)}) == settings
    path.unlink()  # as the command line does at exit (the suite's secret scan reads what is left)


CONFIGURATION = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_the_configuration_page_names_every_setting_and_variable() -> None:
    from uws_adapter.config import Settings

    page = CONFIGURATION.read_text(encoding="utf-8")
    for settings in (Settings, ReceiverSettings, BridgeSettings, EmulatorSettings):
        for option in settings.OPTIONS:
            assert f"`{option.name}`" in page or f"`{option.name}`," in page or option.name in page, option.name
            if option.variable:
                assert f"`{option.variable}`" in page, option.variable


def test_the_configuration_pages_example_loads_for_every_service(tmp_path: Path) -> None:
    page = CONFIGURATION.read_text(encoding="utf-8")
    start = page.index("```ini\n", page.index("### One file for every service")) + len("```ini\n")
    config = tmp_path / "uws-adapter.ini"
    config.write_text(page[start : page.index("```", start)], encoding="utf-8")
    env = {"UWS_CALLBACK_PASSWORD": "p", "UWS_CALLBACK_USERNAME": "u", "UWS_BRIDGE_LEGACY_LOGIN": "l:p"}
    assert load_settings(config, environ={}).backend == "rest"
    assert ReceiverSettings.load(config, environ=env).workers == 2
    assert BridgeSettings.load(config, environ=env).register == ("0000123456-00001",)
    assert EmulatorSettings.load(config, environ={}).devices == 500


@pytest.mark.parametrize(("path", "environ"), [(0, {}), (True, {}), ("a\x00b.ini", {}), (None, 0), (None, ["x"])])
def test_a_settings_path_or_environment_of_the_wrong_kind_is_refused_by_name(path: Any, environ: Any) -> None:
    # open(0) read the standard input as settings and closed it; the others raised outside our tree.
    with pytest.raises(InputError) as info:
        load_settings(path, environ=environ)
    assert info.value.field in ("config file", "environ")


@pytest.mark.parametrize("settings", [0, "settings.ini", {"backend": "rest"}])
def test_connect_refuses_what_is_not_settings(settings: Any) -> None:
    with pytest.raises(InputError, match=r"settings: a .* is not Settings"):
        connect(settings)


def test_a_wait_and_the_emulators_lines_are_bounded_as_the_library_bounds_them() -> None:
    # Each bound has one home (waits.LONGEST_WAIT, emulator.lines.MAX_GENERATED); a setting past it
    # was accepted here and refused later, naming the library's field instead of the option.
    from uws_adapter.emulator.lines import MAX_GENERATED
    from uws_adapter.settings.source import number
    from uws_adapter.waits import LONGEST_WAIT

    for field in ("session_idle", "callback_spacing"):
        with pytest.raises(InputError, match=r"^--x: 1e\+10 is out of range; give more than 0, up to a year"):
            EmulatorSettings.load(environ={}, origins={field: "--x"}, **{field: "1e10"})
        assert getattr(EmulatorSettings(**{field: LONGEST_WAIT}), field) == LONGEST_WAIT
    with pytest.raises(InputError, match=rf"^--devices: {MAX_GENERATED + 1} is out of range; give 0 to 1,000,000"):
        EmulatorSettings.load(environ={}, origins={"devices": "--devices"}, devices=str(MAX_GENERATED + 1))
    assert EmulatorSettings(devices=MAX_GENERATED).devices == MAX_GENERATED
    with pytest.raises(InputError, match=r"^lockout_seconds: 4e\+07 is out of range"):
        BridgeSettings(lockout_seconds=4e7)
    # Just past the bound, the value is quoted whole: 'g' would round it to one inside the range.
    with pytest.raises(InputError, match=r"^--timeout: 31536001.0 is out of range; give 0 or more, up to a year"):
        number(0)(str(int(LONGEST_WAIT) + 1), "--timeout")


def test_a_limit_refused_where_it_was_written_is_fixed_as_it_is_written() -> None:
    # Text (a file, a variable, an option) is told how to write the value, not the Python call's form.
    with pytest.raises(InputError, match=r"^UWS_ADAPTER_TIMEOUT: \(1e\+300, 1.0\) .*; write e.g. 10,120$"):
        load_settings(environ={"UWS_ADAPTER_TIMEOUT": "1e300,1"})
    with pytest.raises(InputError, match=r"^--deadline: 1e\+300 seconds is longer than a year; write e.g. 180$"):
        load_settings(environ={}, origins={"deadline": "--deadline"}, deadline="1e300")
    with pytest.raises(InputError, match=r"^timeout: .*; pass e.g. \(10, 120\)$"):
        load_settings(environ={}, timeout=(1e300, 1.0))


@pytest.mark.parametrize(("text", "expected"), [("20", (20.0, 20.0)), ("5,60", (5.0, 60.0)), (" 7 ", (7.0, 7.0))])
def test_one_number_written_for_the_timeout_sets_both_waits(text: str, expected: Tuple[float, float]) -> None:
    # "--timeout 20" is what a new user tries first (requests takes one number for both).
    assert load_settings(environ={"UWS_ADAPTER_TIMEOUT": text}).timeout == expected
    with pytest.raises(InputError, match=r"^UWS_ADAPTER_TIMEOUT: '1,2,3' is not CONNECT,READ seconds"):
        load_settings(environ={"UWS_ADAPTER_TIMEOUT": "1,2,3"})
