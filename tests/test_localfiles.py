"""Local files named on the command line are opened without waiting: a FIFO no one writes to was
opened by ``open()``, which blocks until a writer comes, so ``--devices-file``, ``--config`` and
``parse FILE`` on one hung for ever, printing nothing. Now it reads as empty at once, and each
command says what an empty file lacks, in one line, with a non-zero exit. A pipe that has a
writer (``--devices-file <(grep ... lines.csv)``) is read as before."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from uws_adapter.localfiles import open_to_read
from uws_adapter.model.devices import read_devices_csv

#: A command that waits on a FIFO fails its test after this long instead of hanging the run.
PATIENCE = 60


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "no-writer.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["envelope", "suspend", "--devices-file", "{fifo}", "--token", "t"], "the device list is empty"),
        (["parse", "{fifo}"], "callback: empty"),
        (["suspend", "--config", "{fifo}"], "selection: no devices"),
    ],
    ids=["devices-file", "parse", "config"],
)
def test_a_fifo_with_no_writer_is_refused_in_one_line_without_waiting(
    tmp_path: Path, fifo: Path, arguments: List[str], said: str
) -> None:
    command = [sys.executable, "-m", "uws_adapter", *(a.format(fifo=fifo) for a in arguments)]
    try:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{arguments[0]} waited on a FIFO no one writes to")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_pipe_with_a_writer_is_read_whole() -> None:
    # What the shell's <(...) passes: /dev/fd/N, the read end of a pipe whose writer is another
    # process (a thread here), which may write after the reader opened it.
    read_end, write_end = os.pipe()
    started = threading.Event()

    def write() -> None:
        started.wait(PATIENCE)
        with os.fdopen(write_end, "w", encoding="utf-8") as out:
            out.write("kind,identifier\nIMEI,350000000000000\nICCID,89148000000000000001\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        started.set()
        devices = read_devices_csv(f"/dev/fd/{read_end}")
    finally:
        writer.join(PATIENCE)
        os.close(read_end)
    assert [str(d) for d in devices] == ["IMEI:350000000000000", "ICCID:89148000000000000001"]


def test_a_regular_file_reads_as_with_open(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\ntwo\n")
    with open_to_read(path) as handle:
        assert handle.read() == b"one\ntwo\n"
    with open_to_read(path, "r", encoding="utf-8") as handle:
        assert handle.readlines() == ["one\n", "two\n"]


@pytest.mark.parametrize("mode", ["w", "a", "r+", "x", "wb"])
def test_open_to_read_never_writes(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match="reading only"):
        open_to_read(tmp_path / "a.txt", mode)
    assert not (tmp_path / "a.txt").exists()
