"""The manual's examples run: every code block marked runnable in README.md and docs/ is executed here.

A fenced block is runnable when the line just before its fence is a marker:

- ``<!-- run -->`` starts an example (a ``python`` block runs in a fresh interpreter, a ``sh`` block
  in bash with ``set -euo pipefail``), in an empty folder of its own, with no ``UWS_*`` or
  ``THINGSPACE_*`` variable inherited and the interpreter's ``bin`` first on ``PATH``;
- ``<!-- run: ports=8080,8081 -->`` moves those port numbers to free ones, in the example and in
  its expected output (the manual can show the usual ports; tests run side by side);
- ``<!-- run: continue -->`` appends the block to the file's previous example (one script);
- ``<!-- output -->`` before a ``text`` block: every line of it must be in the example's output,
  with RequestIds (UUIDs) matched as any UUID.

In a shell example, a line ending in `` &`` starts a service in the background: the runner waits
for the service's first line of output (the banner it prints once it listens), shows it, and stops
the service when the script ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^\s*<!--\s*(run|output)(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: an example's whole run (services started, waited for and stopped included)
TIMEOUT = 240
LANGUAGES = {"python": "python", "sh": "sh", "bash": "sh", "shell": "sh"}


@dataclass
class Example:
    page: str
    line: int
    language: str
    code: List[str] = field(default_factory=list)
    ports: List[int] = field(default_factory=list)
    expected: List[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(lines: List[str], start: int) -> Tuple[str, List[str], int]:
    """The fenced block opening at ``lines[start]``: its language, its text, the line after it."""
    match = FENCE.match(lines[start])
    assert match, f"line {start + 1}: a marker must be followed by a ``` fence"
    indent, language = match.group(1), match.group(2)
    body = []
    end = start + 1
    while not lines[end].strip().startswith("```"):
        body.append(lines[end][len(indent) :])
        end += 1
    return language, body, end + 1


def collect(path: Path) -> List[Example]:
    name = str(path.relative_to(ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    examples: List[Example] = []
    index = 0
    while index < len(lines):
        marker = MARKER.match(lines[index])
        if not marker:
            index += 1
            continue
        kind, options = marker.group(1), (marker.group(2) or "").split()
        language, body, after = _blocks(lines, index + 1)
        where = f"{name}:{index + 2}"
        if kind == "output":
            assert examples, f"{where}: an output block needs an example before it"
            examples[-1].expected += [line for line in body if line.strip()]
        elif "continue" in options:
            assert examples, f"{where}: nothing to continue"
            assert LANGUAGES.get(language) == examples[-1].language, f"{where}: continues another language"
            examples[-1].code += body
        else:
            assert language in LANGUAGES, f"{where}: cannot run a {language!r} block"
            example = Example(name, index + 2, LANGUAGES[language], list(body))
            for option in options:
                key, _, value = option.partition("=")
                assert key == "ports", f"{where}: unknown run option {option!r}"
                example.ports = [int(port) for port in value.split(",")]
            examples.append(example)
        index = after
    return examples


EXAMPLES = [example for page in PAGES for example in collect(page)]


def _free_ports(count: int) -> List[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _shell_script(code: List[str]) -> str:
    """The example as a bash script: background services waited for by their banner, stopped at the end."""
    out = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT"]
    for number, line in enumerate(code):
        if not line.rstrip().endswith(" &"):
            out.append(line)
            continue
        command, pipe, fd = line.rstrip()[:-2], f".service-{number}", 10 + number
        # The service writes to a FIFO; reading its first line waits exactly until it listens. The
        # command is started as it is (no subshell around it), so the job that is killed is the service.
        out += [
            f"mkfifo {pipe}",
            f"{command} > {pipe} 2> {pipe}.err &",
            f"exec {fd}< {pipe}",
            f"if ! IFS= read -r banner <&{fd}; then cat {pipe}.err >&2; exit 1; fi",
            'printf "%s\\n" "$banner"',
            f"cat <&{fd} > {pipe}.out &",
        ]
    return "\n".join(out) + "\n"


def _environment() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_the_example_runs(example: Example, tmp_path: Path) -> None:
    code, expected = "\n".join(example.code) + "\n", list(example.expected)
    for old, new in zip(example.ports, _free_ports(len(example.ports))):
        code = re.sub(rf"\b{old}\b", str(new), code)
        expected = [re.sub(rf"\b{old}\b", str(new), line) for line in expected]
    if example.language == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-c", _shell_script(code.splitlines())]
    # A session of its own: whatever the example leaves running (a service whose job the script lost)
    # is stopped with the session's process group when the example ends.
    process = subprocess.Popen(
        command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    report = f"{example.id} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, report
    shown = UUID.sub("<uuid>", result.stdout)
    for line in expected:
        assert UUID.sub("<uuid>", line) in shown, f"{example.id}: expected {line!r}\n{report}"


def test_the_pages_have_runnable_examples() -> None:
    """The markers are found (a marker syntax that stopped matching would silently run nothing)."""
    pages = {example.page for example in EXAMPLES}
    assert {"README.md", "docs/python.md"} <= pages
    assert any(example.language == "sh" and example.ports for example in EXAMPLES)
