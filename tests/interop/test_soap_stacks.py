"""Third-party SOAP stacks against our one SOAP server, as a legacy system would use them: each client
is built from the WSDL the server serves (``SessionService.svc?wsdl``, ``CarrierService.svc?wsdl``),
runs as its own process on loopback, and goes through the same scenario against the emulator and
against the bridge (in front of the emulator's REST side): LogIn; Suspend and Restore with a device
list (two devices, one named by two identifiers) and with account + group + custom field; the
RequestIds; a bad token and an unknown identifier kind as the stack's own fault type carrying our
code; LogOut (the token is refused after it); and a SOAP CallbackRequest at the legacy listener for
every device of every request. The scenario and its checks: interop_harness.py; the clients:
clients/."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest
from interop_harness import (
    CLIENT_TIMEOUT,
    CLIENTS,
    RecordingProxy,
    Target,
    check_soap_report,
    run,
    run_client,
    running,
    tool,
    unavailable,
)

# One pytest-xdist worker runs them all: the clients' builds (session fixtures) are made once.
pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("interop-soap")]

TARGETS = ["emulator", "bridge"]
JAXWS_JARS = ["jaxws-rt", "jaxws-api", "jaxb-api", "jws-api", "javax.xml.soap-api"]
#: JAX-WS RI's request-context property for HttpURLConnection's chunked streaming mode; the chunk
#: size is small so that every request goes out in several chunks, as CXF sends bodies above 4 KiB.
CHUNK_SIZE = 256
#: Every JVM here lives a few seconds: the C1 compiler alone and the serial collector start it on
#: about a third less CPU than HotSpot's defaults (tiered C2, G1), which only pay off in long runs.
SHORT_LIVED_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
NODE_SOAP_MIN_NODE = (20, 19)  # node-soap 1.13's "engines"


@pytest.fixture(scope="session")
def build_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Builds of this run (wsimport output, npm install): a temp folder per run, shared by its tests."""
    return tmp_path_factory.mktemp("interop-builds")


@pytest.fixture(scope="session")
def java_builds(build_root: Path) -> Dict[str, Path]:
    """Compiled JAX-WS clients, one per contract served (:func:`served_contract`)."""
    return {}


def served_contract(target: Target) -> str:
    """A digest of what wsimport reads from ``target``: both services' WSDLs and every schema they
    import, with the target's own address taken out. The emulator and the bridge serve the same
    contract, so the JAX-WS client is built once: its classes take the WSDL's URL at run time
    (``new SessionService(url)``) and read the target's address from it then. A target serving
    anything else is built for on its own."""
    digest = hashlib.sha256()
    pending, seen = [target.session_wsdl, target.carrier_wsdl], set()
    while pending:
        url = pending.pop(0)
        if url in seen:
            continue
        seen.add(url)
        with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as answer:
            text = answer.read().decode("utf-8")
        pending.extend(re.findall(r'schemaLocation="([^"]+)"', text))
        digest.update(text.replace(target.base_url, "{address}").encode("utf-8"))
    return digest.hexdigest()


def java_client(target: Target, build_root: Path, builds: Dict[str, Path]) -> List[str]:
    java, javac = tool("java", "default-jdk-headless"), tool("javac", "default-jdk-headless")
    wsimport = tool("wsimport", "jaxws")
    jars = [Path("/usr/share/java") / f"{name}.jar" for name in JAXWS_JARS]
    missing = [str(jar) for jar in jars if not jar.is_file()]
    if missing:
        unavailable(
            f"the JAX-WS runtime is incomplete, {', '.join(missing)} missing (Debian packages jaxws, libjaxws-java)"
        )
    classpath = ":".join(str(jar) for jar in jars)
    contract = served_contract(target)
    out = builds.get(contract)
    if out is None:
        out = build_root / f"java-{target.name}-{contract[:12]}"
        sources, classes = out / "src", out / "classes"
        sources.mkdir(parents=True)
        builds[contract] = out  # built once per run, even when the build fails
        for package, wsdl in (("uws.session", target.session_wsdl), ("uws.carrier", target.carrier_wsdl)):
            options = ["-quiet", "-Xnocompile", "-XadditionalHeaders", "-b", str(CLIENTS / "java" / "bindings.xjb")]
            options += ["-s", str(sources), "-d", str(sources)]
            run(
                [wsimport, *options, "-p", package, wsdl], what=f"wsimport {wsdl}",
                env={**os.environ, "WSIMPORT_OPTS": " ".join(SHORT_LIVED_JVM)},
            )  # fmt: skip
        java_files = [str(path) for path in sources.rglob("*.java")] + [str(CLIENTS / "java" / "UwsClient.java")]
        javac_jvm = [f"-J{option}" for option in SHORT_LIVED_JVM]
        run(
            [javac, *javac_jvm, "-nowarn", "-encoding", "UTF-8", "-cp", classpath, "-d", str(classes), *java_files],
            what="javac",
        )
        (out / "built").touch()
    if not (out / "built").exists():
        pytest.fail(
            f"the JAX-WS client could not be built from the {target.name}'s WSDL (see the first such test)", False
        )
    return [java, *SHORT_LIVED_JVM, "-cp", f"{out / 'classes'}:{classpath}", "UwsClient"]


@pytest.fixture(scope="session")
def node_modules(build_root: Path) -> Path:
    """node-soap, installed with npm from the pinned lock file into this run's temp folder."""
    node, npm = tool("node", "nodejs"), tool("npm", "npm")
    found = run([node, "--version"], what="node --version").strip().lstrip("v")
    if tuple(int(part) for part in found.split(".")[:2]) < NODE_SOAP_MIN_NODE:
        unavailable(f"node {found} is older than {'.'.join(map(str, NODE_SOAP_MIN_NODE))}, which node-soap 1.13 needs")
    folder = build_root / "node"
    folder.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(CLIENTS / "js" / name, folder / name)
    try:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            cwd=folder, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        unavailable(f"npm could not install node-soap: {getattr(exc, 'stderr', '') or exc}")
    return folder / "node_modules"


def php_client() -> List[str]:
    php = tool("php", "php-cli")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=False).stdout.split()
    if "soap" not in modules:
        unavailable("PHP has no soap extension (Debian package php-soap)")
    return [php, str(CLIENTS / "php" / "uws_client.php")]


def perl_client() -> List[str]:
    perl = tool("perl", "perl")
    if subprocess.run([perl, "-MSOAP::Lite", "-e", "1"], capture_output=True, check=False).returncode != 0:
        unavailable("Perl has no SOAP::Lite (Debian package libsoap-lite-perl)")
    return [perl, str(CLIENTS / "pl" / "uws_client.pl")]


def python_client(script: str, module: str) -> List[str]:
    if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False).returncode:
        unavailable(f"{module} is not installed in {sys.executable} (pip install -e '.[test]')")
    return [sys.executable, str(CLIENTS / "py" / script)]


@pytest.mark.parametrize("target", TARGETS)
def test_php_soapclient_in_wsdl_mode(target: str, tmp_path: Path) -> None:
    command = php_client()
    with running(target, tmp_path) as server:
        check_soap_report(run_client([*command, *server.arguments()]), server)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_jaxws_wsimport_client(
    target: str, framing: str, tmp_path: Path, build_root: Path, java_builds: Dict[str, Path]
) -> None:
    """JAX-WS RI (wsimport + javac), once plain and once chunked as CXF sends; a recording relay in
    front of the server shows how each request was framed on the wire."""
    with running(target, tmp_path) as server:
        command = java_client(server, build_root, java_builds)
        proxy = RecordingProxy(server.base_url)
        try:
            options = ["--via", proxy.url] + (["--chunk-size", str(CHUNK_SIZE)] if framing == "chunked" else [])
            report = run_client([*command, *server.arguments(), *options])
            heads = proxy.request_heads()
        finally:
            proxy.close()
        check_soap_report(report, server)
    assert len(heads) >= 9, heads  # every operation went through the relay
    chunked = ["transfer-encoding: chunked" in head for head in heads]
    assert chunked == [framing == "chunked"] * len(heads), heads
    if framing == "content-length":
        assert all("content-length:" in head for head in heads), heads


@pytest.mark.parametrize("target", TARGETS)
def test_node_soap(target: str, tmp_path: Path, node_modules: Path) -> None:
    command = [tool("node", "nodejs"), str(CLIENTS / "js" / "uws_client.js")]
    with running(target, tmp_path) as server:
        report = run_client([*command, *server.arguments()], env={"NODE_PATH": str(node_modules)})
        check_soap_report(report, server)


@pytest.mark.parametrize("target", TARGETS)
def test_perl_soap_lite_default_envelope(target: str, tmp_path: Path) -> None:
    command = perl_client()
    with running(target, tmp_path) as server:
        report = run_client([*command, *server.arguments()])
        check_soap_report(report, server)
    # What made it SOAP::Lite's default envelope, on every request: soap:encodingStyle on the
    # Envelope and xsi:type="xsd:..." on simple values.
    wire = report["wire"]
    assert wire["requests"] >= 9
    assert wire == {
        "requests": wire["requests"],
        "with_encoding_style": wire["requests"],
        "with_xsi_type": wire["requests"],
    }


@pytest.mark.parametrize("target", TARGETS)
def test_suds_community(target: str, tmp_path: Path) -> None:
    command = python_client("suds_client.py", "suds")
    with running(target, tmp_path) as server:
        check_soap_report(run_client([*command, *server.arguments()]), server)


@pytest.mark.parametrize("target", TARGETS)
def test_zeep_from_the_served_url(target: str, tmp_path: Path) -> None:
    command = python_client("zeep_client.py", "zeep")
    with running(target, tmp_path) as server:
        check_soap_report(run_client([*command, *server.arguments()]), server)
