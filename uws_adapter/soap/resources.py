"""The bundled WSDL and XSD files (package data ``uws_adapter.wsdl``): found here, without zeep, so
that the SOAP server (emulator, bridge) and the UWS client read the same files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from uws_adapter.errors import ResourceError

__all__ = ["WSDL_FILE", "resource_dir"]

WSDL_FILE = "uws.wsdl"


def resource_dir() -> Path:
    """The folder of the installed WSDL and XSD files (package ``uws_adapter.wsdl``)."""
    try:
        root = resources.files("uws_adapter.wsdl")
    except ModuleNotFoundError:
        raise ResourceError(
            "the bundled WSDL (package uws_adapter.wsdl) is not installed; reinstall uws-adapter"
        ) from None
    # A zipped install would need extraction; wheels install as files, which zeep and lxml need.
    if not isinstance(root, Path) or not (root / WSDL_FILE).is_file():
        raise ResourceError(f"{WSDL_FILE} is missing from {root}; reinstall uws-adapter")
    return root
