""".NET (Mono, from Debian) against our emulator and bridge, as a .NET shop would use them (issue 20,
items 23, 24 and 26):

- clients, each built from the WSDL the target serves and compiled with mcs into a temp folder per
  run, going through the SOAP scenario every stack runs (interop_harness.py): a classic web
  reference (``wsdl`` tool proxies, ``SoapHttpClientProtocol``) and a WCF BasicHttpBinding client
  (``svcutil`` from ``?singleWsdl``, which must give DataContract proxies with the operations'
  own Actions: what WCF publishes, item 24);
- callback listeners receiving the emulator's callbacks and the bridge's relays: an HttpListener
  with XmlSerializer, an ASMX WebMethod (System.Web's runtime behind an HttpListener: Debian 12's
  xsp4 does not start on its Mono 6.8), a WCF operation with ``Action="*"``, and a WCF operation with a
  specific Action, which takes callbacks only when they are sent with that SOAPAction
  (``soap_action`` / ``--listener-soap-action``, item 23) — and which refuses them without it, as an
  ASMX service refuses ``SOAPAction: ""``.

The programs: clients/dotnet/. Their toolchain: .ci/interop.sh (Debian packages mono-devel,
libmono-system-servicemodel4.0a-cil, libmono-system-web-services4.0-cil)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest
from conftest import PASSWORD, USER
from interop_harness import (
    CLIENT_TIMEOUT,
    CLIENTS,
    LISTENER_PASSWORD,
    LISTENER_USER,
    Target,
    check_soap_report,
    imei,
    run_client,
    running,
    tool,
    unavailable,
)
from servers import wait_until

from uws_adapter import UwsClient, select
from uws_adapter.emulator.core import DEFAULT_ACCOUNT

# One pytest-xdist worker runs them all: the Mono builds (session fixtures) are made once.
pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("interop-dotnet")]

TARGETS = ["emulator", "bridge"]
DOTNET = CLIENTS / "dotnet"
MONO_LIB = Path("/usr/lib/mono/4.5")
#: Assemblies the programs reference, and the Debian package of each.
ASSEMBLIES = {
    "System.ServiceModel.dll": "libmono-system-servicemodel4.0a-cil",
    "System.Web.Services.dll": "libmono-system-web-services4.0-cil",
}
#: The specific Action of the WCF listener's operation (clients/dotnet/Listeners.cs): the carrier's
#: own value is not documented, so the test names one, as a legacy system would in its contract.
SPECIFIC_ACTION = "http://nphase.com/unifiedwebservice/v2/ICallbackService/CallbackRequest"
STARTUP_TIMEOUT = 90.0  # bounds a hung Mono only; the listeners start in about 2 s
START_ATTEMPTS = 3
CALLBACKS_TIMEOUT = 30.0


#: A command and what it does (for a failure's message).
Command = Tuple[List[str], str]


@dataclass(frozen=True)
class Mono:
    """The Mono toolchain: the runtime, the C# compiler and the two proxy generators."""

    mono: str
    mcs: str
    wsdl: str
    svcutil: str

    def compiling(self, out: Path, sources: List[Path], references: List[str], *, library: bool = False) -> Command:
        command = [self.mcs, "-nologo", "-nowarn:618", f"-out:{out}", *(f"-r:{r}" for r in references)]
        command += ["-target:library"] if library else []
        return [*command, *map(str, sources)], f"mcs {out.name}"


def run_all(commands: List[Command]) -> None:
    """Run independent build commands side by side (each Mono tool spends most of its second or two
    starting up); a failure shows the first one that failed, with its output."""
    started = [(subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), c, what)
               for c, what in commands]  # fmt: skip
    failures = []
    for process, command, what in started:
        try:
            out, err = process.communicate(timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            failures.append(f"{what}: still running after {CLIENT_TIMEOUT:.0f} s: {' '.join(command)}")
            continue
        if process.returncode != 0:
            failures.append(f"{what} failed (exit {process.returncode}): {' '.join(command)}\n{out}\n{err}")
    if failures:
        pytest.fail("\n".join(failures), False)


@pytest.fixture(scope="session")
def mono() -> Mono:
    found = Mono(
        mono=tool("mono", "mono-runtime"), mcs=tool("mcs", "mono-devel"), wsdl=tool("wsdl", "mono-devel"),
        svcutil=tool("svcutil", "mono-devel"),
    )  # fmt: skip
    for assembly, package in ASSEMBLIES.items():
        if not (MONO_LIB / assembly).is_file():
            unavailable(f"{MONO_LIB / assembly} is missing (Debian package {package})")
    return found


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds of this run: a temp folder per run, shared by its tests."""
    return tmp_path_factory.mktemp("dotnet-builds")


@pytest.fixture(scope="session")
def dotnet_builds() -> Dict[str, Path]:
    """The compiled clients, one folder per target kind, each from the WSDL that target served."""
    return {}


def dotnet_clients(target: Target, mono: Mono, build_root: Path, builds: Dict[str, Path]) -> Dict[str, List[str]]:
    """The commands of the web-reference and the WCF clients, built (once per run and target kind)
    from what ``target`` serves: ``?wsdl`` for the ``wsdl`` tool, ``?singleWsdl`` for svcutil."""
    out = builds.get(target.name)
    if out is None:
        out = build_root / target.name
        builds[target.name] = out  # built once per run, even when the build fails
        (out / "web").mkdir(parents=True)
        (out / "wcf").mkdir()
        generate: List[Command] = []
        for service, wsdl in (("Session", target.session_wsdl), ("Carrier", target.carrier_wsdl)):
            web = out / "web" / f"{service}.cs"
            generate.append(([mono.wsdl, "-nologo", f"-n:Uws{service}", f"-out:{web}", wsdl], f"wsdl {wsdl}"))
            single = wsdl.replace("?wsdl", "?singleWsdl")
            wcf = out / "wcf" / f"{service}.cs"
            generate.append(([mono.svcutil, "--noLogo", "--noConfig", f"-o:{wcf}", single], f"svcutil {single}"))
        run_all(generate)
        for service in ("Session", "Carrier"):
            check_data_contract_proxy((out / "wcf" / f"{service}.cs").read_text(), f"{target.name} {service}")
        shared = [DOTNET / "Steps.cs"]
        web_sources = [
            out / "web" / "Session.cs",
            out / "web" / "Carrier.cs",
            *shared,
            DOTNET / "WebReferenceClient.cs",
        ]
        wcf_sources = [out / "wcf" / "Session.cs", out / "wcf" / "Carrier.cs", *shared, DOTNET / "WcfClient.cs"]
        run_all([
            mono.compiling(out / "WebReferenceClient.exe", web_sources, ["System.Web.Services.dll"]),
            mono.compiling(
                out / "WcfClient.exe", wcf_sources, ["System.ServiceModel.dll", "System.Runtime.Serialization.dll"]
            ),
        ])  # fmt: skip
        (out / "built").touch()
    if not (out / "built").exists():
        pytest.fail(
            f"the .NET clients could not be built from the {target.name}'s WSDL (see the first such test)", False
        )
    return {
        "web-reference": [mono.mono, str(out / "WebReferenceClient.exe")],
        "wcf": [mono.mono, str(out / "WcfClient.exe")],
    }


def check_data_contract_proxy(code: str, url: str) -> None:
    """What svcutil wrote from ``url`` is what it writes from a WCF-published WSDL (item 24):
    DataContract types (no fallback to XmlSerializer, which any xs:any causes) and each operation's
    own Action (``Action="*"`` when the portType has no wsaw:Action)."""
    problems = []
    if "DataContractAttribute" not in code:
        problems.append("no DataContract types")
    if "XmlSerializerFormat" in code:
        problems.append("XmlSerializer types (the schema has a construct DataContract cannot hold, e.g. xs:any)")
    if 'Action="*"' in code:
        problems.append('Action="*" (no wsaw:Action on the portType)')
    assert not problems, f"svcutil from {url}: " + "; ".join(problems)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("client", ["web-reference", "wcf"])
def test_dotnet_client(target: str, client: str, tmp_path: Path, mono: Mono, build_root: Path,
                       dotnet_builds: Dict[str, Path]) -> None:  # fmt: skip
    """The SOAP scenario; for the WCF client that includes the token header, which svcutil's
    DataContract proxy has no parameter for (WcfClient.cs adds it as WCF code does)."""
    with running(target, tmp_path) as server:
        command = dotnet_clients(server, mono, build_root, dotnet_builds)[client]
        report = run_client([*command, *server.arguments()])
        check_soap_report(report, server)
    assert "Mono " in report["client"], report["client"]


# Callback listeners ----------------------------------------------------------------------------------


class DotnetListeners:
    """clients/dotnet/Listeners.exe, running: its listeners' URLs, and every callback they printed."""

    def __init__(self, mono: Mono, folder: Path) -> None:
        self.urls: Dict[str, str] = {}
        self.runtime = ""
        self.received: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        # Mono has been seen (rarely, in a full parallel run) never to print its "listening" line:
        # a start that does not report within its share of the timeout is killed and tried again.
        for attempt in range(1, START_ATTEMPTS + 1):
            self._start(mono, folder, attempt)
            if self.started.wait(STARTUP_TIMEOUT / START_ATTEMPTS) and self.urls:
                return
            errors = self.errors()
            self.close()
        pytest.fail(f"the .NET listeners did not start in {START_ATTEMPTS} attempts: {errors}", False)

    def _start(self, mono: Mono, folder: Path, attempt: int) -> None:
        # stderr to a file, never an unread pipe: a full pipe would block the listener.
        self.stderr_path = folder / f"listeners-{attempt}.err"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [mono.mono, str(folder / "Listeners.exe"), str(folder / "asmx")], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True, name="dotnet-listeners")
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "listening" in record:
                self.urls, self.runtime = record["listening"], record["runtime"]
                self.started.set()
            else:
                with self.lock:
                    self.received.append(record)
        self.started.set()  # ended before it listened

    def callbacks(self, listener: str, request_ids: Set[str]) -> List[Dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["listener"] == listener and r["request_id"] in request_ids]

    def errors(self) -> str:
        written = self.stderr_path.read_text(errors="replace")[-3000:]
        return written if self.process.poll() is not None else f"(still running) {written}"

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()  # it stops when its stdin closes
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)  # it ends at the end of the output; then the pipes can be closed
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def dotnet_listeners(mono: Mono, build_root: Path) -> Iterator[DotnetListeners]:
    folder = build_root / "listeners"
    (folder / "asmx" / "bin").mkdir(parents=True)
    shutil.copy(DOTNET / "asmx" / "Callback.asmx", folder / "asmx" / "Callback.asmx")
    library = folder / "asmx" / "bin" / "UwsCallbacks.dll"  # where System.Web loads the ASMX's class from
    sources = [DOTNET / "Callbacks.cs", DOTNET / "Steps.cs"]
    run_all([mono.compiling(library, sources, ["System.Web.Services.dll", "System.Web.dll"], library=True)])
    shutil.copy(library, folder / "UwsCallbacks.dll")
    references = [str(folder / "UwsCallbacks.dll"), "System.ServiceModel.dll", "System.Runtime.Serialization.dll"]
    run_all([mono.compiling(folder / "Listeners.exe", [DOTNET / "Listeners.cs"], references)])
    listeners = DotnetListeners(mono, folder)
    try:
        # System.Web compiles the .asmx on its first request: done here, not inside a callback's timeout.
        with urllib.request.urlopen(listeners.urls["asmx"] + "?wsdl", timeout=STARTUP_TIMEOUT) as answer:
            assert answer.status == 200
        yield listeners
    finally:
        listeners.close()


def provision(server: Target) -> Dict[str, Tuple[str, Set[str]]]:
    """Suspend, then restore, the fleet's two listed lines through the target, with our own client;
    each RequestId with its action and the lines' IMEIs."""
    client = UwsClient(
        base_url=server.base_url, username=server.username, password=server.password, timeout=(5.0, 20.0)
    )
    lines = server.fleet.listed
    devices = [line.device for line in lines]
    expected = {}
    try:
        expected[client.suspend(select(devices))] = ("Suspend", {imei(line) for line in lines})
        expected[client.restore(select(devices))] = ("Restore", {imei(line) for line in lines})
    finally:
        client.logout()
    return expected


def imei_of(record: Dict[str, Any]) -> Optional[str]:
    return next((d.split(":", 1)[1] for d in record["devices"] if d.lower().startswith("imei:")), None)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("listener", ["xmlserializer", "asmx", "wcf-any", "wcf-action"])
def test_dotnet_listener_receives_callbacks(
    target: str, listener: str, tmp_path: Path, dotnet_listeners: DotnetListeners
) -> None:
    """Every callback, one per device of each request, deserialized by the listener's own stack, with
    the registered credentials. The specific-Action WCF listener gets them sent with its Action."""
    soap_action = SPECIFIC_ACTION if listener == "wcf-action" else None
    with running(target, tmp_path, listener_url=dotnet_listeners.urls[listener], soap_action=soap_action) as server:
        expected = provision(server)
        ids = set(expected)
        total = sum(len(imeis) for _, imeis in expected.values())
        wait_until(
            lambda: len(dotnet_listeners.callbacks(listener, ids)) >= total, CALLBACKS_TIMEOUT, f"{total} callbacks"
        )
        received: Dict[str, Tuple[str, Set[str]]] = {}
        for record in dotnet_listeners.callbacks(listener, ids):
            assert (record["status"], record["username"], record["password"]) == (
                "Success", LISTENER_USER, LISTENER_PASSWORD
            ), record  # fmt: skip
            # As each stack reports it: HttpListener and ASMX the header as sent (quoted), WCF unquoted.
            sent = None if soap_action is None else (soap_action if listener.startswith("wcf") else f'"{soap_action}"')
            assert record["soap_action"] == sent, record
            received.setdefault(record["request_id"], (record["action"], set()))[1].add(str(imei_of(record)))
        assert received == expected
        # Acknowledged (2xx) by the listener: the emulator's count (its callbacks to the bridge, for the bridge),
        # counted once the answer is back, after the listener printed the callback.
        counters = server.emulator.counters
        wait_until(lambda: counters["callbacks_acknowledged"] >= total, CALLBACKS_TIMEOUT, f"{total} acknowledged")


@pytest.mark.parametrize(
    ("listener", "soap_action"),
    [("wcf-action", None), ("asmx", "")],
    ids=["wcf-specific-action-without-soapaction", "asmx-with-empty-soapaction"],
)
def test_dotnet_listener_refuses_callbacks_sent_with_the_wrong_soap_action(
    listener: str, soap_action: Optional[str], tmp_path: Path, dotnet_listeners: DotnetListeners
) -> None:
    """The trade-off the setting documents: the default (no header) does not reach a WCF operation with
    a specific Action (ActionNotSupported), and an empty SOAPAction does not reach an ASMX service
    routed by SOAPAction. Neither listener acknowledges; the emulator will send them again."""
    with running("emulator", tmp_path, listener_url=dotnet_listeners.urls[listener], soap_action=soap_action) as server:
        expected = provision(server)
        total = sum(len(imeis) for _, imeis in expected.values())
        counters = server.emulator.counters
        wait_until(lambda: counters["callbacks_sent"] >= total, CALLBACKS_TIMEOUT, f"{total} callbacks sent")
        assert counters["callbacks_acknowledged"] == 0
        assert dotnet_listeners.callbacks(listener, set(expected)) == []


def test_the_command_line_option_reaches_a_specific_action_listener(
    tmp_path: Path, dotnet_listeners: DotnetListeners
) -> None:
    """``uws-adapter emulator --listener-soap-action``: the emulator run as a user runs it, its callbacks
    taken by the WCF operation with that specific Action."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UWS_CALLBACK_")}
    environment.update(UWS_CALLBACK_USERNAME=LISTENER_USER, UWS_CALLBACK_PASSWORD=LISTENER_PASSWORD)
    command = [sys.executable, "-m", "uws_adapter", "emulator", "--port", "0", "--devices", "2",
               "--listener", dotnet_listeners.urls["wcf-action"], "--listener-soap-action", SPECIFIC_ACTION]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment)  # fmt: skip
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("emulator: UWS at "), banner
        client = UwsClient(base_url=banner.split(" at ")[1].split(",")[0], username=USER, password=PASSWORD,
                           timeout=(5.0, 20.0))  # fmt: skip
        request_id = client.suspend(select(account=DEFAULT_ACCOUNT))
        wait_until(lambda: len(dotnet_listeners.callbacks("wcf-action", {request_id})) == 2, CALLBACKS_TIMEOUT, "2")
        records = dotnet_listeners.callbacks("wcf-action", {request_id})
        assert {(r["action"], r["status"], r["soap_action"]) for r in records} == {
            ("Suspend", "Success", SPECIFIC_ACTION)
        }
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
