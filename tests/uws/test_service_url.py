"""The UWS endpoint is the base the services sit under (``.../api/v2``). A service's own address
given as the endpoint (copied from its ``?wsdl`` URL, say) is refused before anything is sent,
naming the setting: it used to go out as ``.../CarrierService.svc/SessionService.svc``, which the
emulator answered (it serves a service under any prefix) and the carrier's WCF would not."""

from __future__ import annotations

from pathlib import Path

import pytest

from uws_adapter import Device, Emulator, UwsClient, generated_devices, select
from uws_adapter.cli.main import main
from uws_adapter.errors import InputError
from uws_adapter.uws.envelope import build_login, service_url


@pytest.mark.parametrize("service", ["CarrierService.svc", "SessionService.svc/", "sessionservice.SVC"])
def test_a_service_address_is_not_a_base(service: str) -> None:
    base = f"https://uws.apps.nphase.com/api/v2/{service}"
    with pytest.raises(InputError, match=r"(?i)^base_url: .* is a service's address,.*drop the /[^ ]+\.svc"):
        service_url(base, "SessionService")
    with pytest.raises(InputError, match="base_url"):
        build_login("u", "p", base_url=base)
    assert service_url("https://uws.apps.nphase.com/api/v2/", "SessionService").endswith("/api/v2/SessionService.svc")


def test_the_client_sends_nothing_to_a_service_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator(devices=generated_devices(2)) as emulator:
        client = UwsClient(
            base_url=f"{emulator.base_url}/CarrierService.svc", username="uws-user", password="uws-password"
        )
        with pytest.raises(InputError, match="is a service's address"):
            client.suspend(select([Device.parse("IMEI:350000000000000")]))
        assert (emulator.counters["logins"], emulator.counters["failed_logins"]) == (0, 0)
        endpoint = f"{emulator.base_url}/SessionService.svc"
        status = main(["suspend", "--device", "IMEI:350000000000000", "--endpoint", endpoint,
                       "--username", "uws-user", "--password", "uws-password"])  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is a service's address" in err
    assert "UWS_ENDPOINT" in err


def test_a_base_no_parser_reads_is_bad_input_naming_it() -> None:
    # The service-address check reads the base's path: a base urlsplit refuses (an unclosed IPv6
    # bracket) came out of build_envelope/build_login as a bare ValueError, password and all in no
    # message, but not an error of ours either.
    base = "https://u:Secr3tPw@[::1/api/v2"
    with pytest.raises(InputError, match=r"^base_url: .* cannot be parsed") as raised:
        service_url(base, "SessionService")
    assert "Secr3tPw" not in str(raised.value)
    with pytest.raises(InputError, match="base_url"):
        build_login("u", "p", base_url=base)


@pytest.mark.parametrize(
    ("where", "named"),
    [("environment", "UWS_ENDPOINT: "), ("option", "--endpoint: "), ("file", "soap_url: ")],
    ids=["environment", "option", "settings-file"],
)
def test_the_refusal_names_where_the_endpoint_was_given(
    where: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # It named base_url, the library's argument, whichever setting the address came from; a
    # trailing slash after the service's address let it through the setting's check.
    endpoint = "http://127.0.0.1:9/api/v2/CarrierService.svc/"
    args = ["suspend", "--device", "IMEI:350000000000000", "--username", "u", "--password", "p"]
    monkeypatch.delenv("UWS_ENDPOINT", raising=False)
    if where == "environment":
        monkeypatch.setenv("UWS_ENDPOINT", endpoint)
    elif where == "option":
        args += ["--endpoint", endpoint]
    else:
        settings = tmp_path / "uws.ini"
        settings.write_text(f"[uws-adapter]\nsoap_url = {endpoint}\n")
        args += ["--config", str(settings)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert named in err
    assert "is a service's address" in err
