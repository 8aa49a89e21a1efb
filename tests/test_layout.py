"""The package layout's boundaries, read from the source (imports anywhere in a module, including
the ones inside functions): each concern depends only on what it should."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "uws_adapter"


def _imports(path: Path) -> Set[str]:
    names: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import (the package uses absolute imports)"
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> Dict[str, Set[str]]:
    return {str(p.relative_to(PACKAGE.parent)): _imports(p) for p in sorted((PACKAGE / package).rglob("*.py"))}


def _offending(package: str, forbidden: List[str]) -> List[str]:
    return [
        f"{module} imports {name}"
        for module, names in _modules(package).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_model_imports_only_the_standard_library_and_errors() -> None:
    allowed_ours = {"uws_adapter.errors", "uws_adapter.localfiles"}  # localfiles: standard library only
    offending = []
    for module, names in _modules("model").items():
        for name in sorted(names):
            top = name.split(".")[0]
            if top == "uws_adapter":
                if not (name.startswith("uws_adapter.model") or any(name.startswith(a) for a in allowed_ours)):
                    offending.append(f"{module} imports {name}")
            elif top not in _STDLIB:
                offending.append(f"{module} imports {name}")
    assert offending == []


@pytest.mark.parametrize("package", ["rest", "receiver", "callbacks", "store", "model"])
def test_the_rest_side_and_the_receiver_never_touch_soap_zeep_or_the_emulator(package: str) -> None:
    forbidden = ["uws_adapter.soap", "uws_adapter.uws", "zeep", "uws_adapter.emulator", "uws_adapter.bridge"]
    assert _offending(package, forbidden) == []


@pytest.mark.parametrize("package", ["soap", "bridge", "serving", "emulator"])
def test_only_the_uws_client_package_imports_zeep(package: str) -> None:
    assert _offending(package, ["zeep", "uws_adapter.uws"]) == []


@pytest.mark.parametrize("package", ["uws", "rest", "provisioning"])
def test_clients_record_through_the_request_log_interface_only(package: str) -> None:
    sqlite_modules = [
        "uws_adapter.store." + name for name in ("sqlite", "sqlite_files", "sqlite_schema", "sqlite_writes")
    ]
    offending = _offending(package, [*sqlite_modules, "sqlite3"])
    assert offending == []


def test_retiring_uws_means_deleting_the_uws_client_the_emulator_uws_front_and_the_cli_uws_commands() -> None:
    # Outside uws/, only the CLI (which offers the UWS commands), the lazy public API and the
    # client factories name the UWS client; the emulator's UWS front uses our SOAP server only.
    users = {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "uws" not in path.relative_to(PACKAGE).parts[:1]
        and any(
            n == "uws_adapter.uws" or n.startswith("uws_adapter.uws.") or n.split(".")[0] == "zeep"
            for n in _imports(path)
        )
    }
    allowed = {"uws_adapter/__init__.py", "uws_adapter/config.py", "uws_adapter/demo.py"}
    assert {u for u in users if not u.startswith("uws_adapter/cli/")} - allowed == set()


_STDLIB = {
    "__future__", "argparse", "codecs", "collections", "contextlib", "csv", "dataclasses", "datetime", "enum",
    "functools", "hashlib", "importlib", "io", "itertools", "json", "math", "os", "pathlib", "re", "string", "sys",
    "typing", "uuid", "warnings",
}  # fmt: skip


#: Run in a fresh interpreter in which the UWS client package and zeep cannot be imported (as
#: after retiring UWS): the emulator (its REST front), then the REST commands of the CLI.
_WITHOUT_UWS = """
import sys
from importlib.abc import MetaPathFinder

class Retired(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("zeep", "uws_adapter.uws") or name.startswith(("zeep.", "uws_adapter.uws.")):
            raise ModuleNotFoundError(f"No module named {name!r} (retired)")
        return None

sys.meta_path.insert(0, Retired())
from uws_adapter import Emulator, generated_devices
from uws_adapter.cli.main import main

with Emulator(devices=generated_devices(3)) as emulator:
    device = emulator.devices[0].device.identifiers[0]
    common = ["--backend", "rest", "--rest-url", emulator.rest_url, "--daily-budget", "0"]
    for argv in (["suspend", "--device", f"{device.kind}:{device.identifier}", *common],
                 ["rest-body", "suspend", "--device", f"{device.kind}:{device.identifier}"],
                 ["listeners", "list", "0000123456-00001", "--rest-url", emulator.rest_url]):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        assert code in (0, None), (argv, code)
"""


def test_the_rest_commands_run_with_the_uws_client_package_gone(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ, "UWS_USERNAME": "uws-user", "UWS_PASSWORD": "uws-password",
        "THINGSPACE_CLIENT_ID": "ts-client", "THINGSPACE_CLIENT_SECRET": "ts-secret",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_UWS], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
