from __future__ import annotations

from pathlib import Path

import pytest

from uws_adapter import ResourceError
from uws_adapter.uws.bindings import _OfflineTransport, bindings, resource_dir


def test_loaded_once_per_process() -> None:
    assert bindings() is bindings()


def test_operations_from_the_wsdl() -> None:
    found = bindings()
    assert found.carrier._binding_options["address"] == "https://uws.apps.nphase.com/api/v2/CarrierService.svc"
    assert {"LogIn", "LogOut"} <= set(found.session._operations)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/evil.xsd", "https://example.invalid/x.xsd", "ftp://127.0.0.1/x"],
    ids=["http", "https", "ftp"],
)
def test_transport_never_goes_to_the_network(url: str) -> None:
    with pytest.raises(ResourceError, match="loaded offline"):
        _OfflineTransport(resource_dir()).load(url)


def test_transport_reads_no_file_outside_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "x.xsd"
    outside.write_text("<x/>")
    transport = _OfflineTransport(resource_dir())
    for url in (str(outside), outside.as_uri(), str(resource_dir() / ".." / ".." / "setup.cfg")):
        with pytest.raises(ResourceError, match="outside the bundled WSDL folder"):
            transport.load(url)
    assert transport.load(str(resource_dir() / "uws.wsdl")).startswith(b"<?xml")
