"""``uws-adapter listeners register|list|remove`` against the emulator's REST API, as processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER
from test_cli import run

from uws_adapter import Emulator, generated_devices
from uws_adapter.emulator.core import DEFAULT_ACCOUNT

LOGIN = {"UWS_USERNAME": USER, "UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_ID": CLIENT_ID,
         "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET}  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(devices=generated_devices(1)) as served:
        yield served


def test_register_list_and_remove(tmp_path: Path, emulator: Emulator) -> None:
    url = "http://127.0.0.1:9/callbacks"
    env = {**LOGIN, "UWS_ADAPTER_REST_URL": emulator.rest_url, "UWS_CALLBACK_USERNAME": "cb-user",
           "UWS_CALLBACK_PASSWORD": "cb-secret"}  # fmt: skip
    registered = run(["listeners", "register", DEFAULT_ACCOUNT, url, "--service", "NiddService"], tmp_path, **env)
    assert registered.returncode == 0, registered.stderr
    assert "cb-secret" not in registered.stdout + registered.stderr
    listener = emulator.listeners[(DEFAULT_ACCOUNT, "NiddService")]
    assert (listener.url, listener.username, listener.password) == (url, "cb-user", "cb-secret")

    listed = run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"{DEFAULT_ACCOUNT}\tNiddService\t{url}\n"

    removed = run(["listeners", "remove", DEFAULT_ACCOUNT, "--service", "NiddService"], tmp_path, **env)
    assert removed.returncode == 0, removed.stderr
    assert (DEFAULT_ACCOUNT, "NiddService") not in emulator.listeners
    assert run(["listeners", "list", DEFAULT_ACCOUNT, "--json"], tmp_path, **env).stdout == ""
    empty = run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env)
    assert (empty.returncode, empty.stdout) == (0, "")  # a script reading stdout sees no listener
    assert empty.stderr.startswith(f"no REST listener registered for {DEFAULT_ACCOUNT}"), empty.stderr


def test_a_listing_masks_the_password_in_a_listener_url(tmp_path: Path, emulator: Emulator) -> None:
    env = {**LOGIN, "UWS_ADAPTER_REST_URL": emulator.rest_url, "UWS_CALLBACK_USERNAME": "cb-user",
           "UWS_CALLBACK_PASSWORD": "cb-secret"}  # fmt: skip
    url = "http://relay:url-pass-77@127.0.0.1:9/callbacks"
    registered = run(["listeners", "register", DEFAULT_ACCOUNT, url, "--service", "NiddService"], tmp_path, **env)
    assert registered.returncode == 0, registered.stderr
    assert emulator.listeners[(DEFAULT_ACCOUNT, "NiddService")].url == url  # registered as given
    listed = run(["listeners", "list", DEFAULT_ACCOUNT], tmp_path, **env)
    assert listed.stdout == f"{DEFAULT_ACCOUNT}\tNiddService\thttp://***@127.0.0.1:9/callbacks\n", listed.stderr
    as_json = run(["listeners", "list", DEFAULT_ACCOUNT, "--json"], tmp_path, **env)
    assert json.loads(as_json.stdout)["url"] == "http://***@127.0.0.1:9/callbacks"
    assert "url-pass-77" not in listed.stdout + listed.stderr + as_json.stdout + as_json.stderr


def test_settings_from_a_config_file_and_bad_urls(tmp_path: Path, emulator: Emulator) -> None:
    config = tmp_path / "uws-adapter.ini"
    config.write_text(f"[uws-adapter]\nrest_url = {emulator.rest_url}  ; the emulator\nusername = {USER}\n"
                      f"client_id = {CLIENT_ID}\n")  # fmt: skip
    env = {"UWS_PASSWORD": PASSWORD, "THINGSPACE_CLIENT_SECRET": CLIENT_SECRET}
    listed = run(["listeners", "list", DEFAULT_ACCOUNT, "--config", str(config)], tmp_path, **env)
    assert listed.returncode == 0, listed.stderr
    refused = run(["listeners", "register", DEFAULT_ACCOUNT, "not-a-url", "--config", str(config)], tmp_path, **env)
    assert refused.returncode == 2
    assert "URL: 'not-a-url' is not an http(s) URL" in refused.stderr
    assert emulator.counters["oauth_tokens"] == 1  # the list only: the refusal sent nothing
