"""The emulator's lines: ``--devices N`` generated, or ``--devices-file F`` read; given both, the
command refuses in one line (``--devices`` used to be ignored without a word), from any origin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clirun import run_in_process

from uws_adapter.errors import InputError
from uws_adapter.settings.services import DEFAULT_DEVICES, EmulatorSettings

DATA = Path(__file__).resolve().parent.parent / "data"


def test_devices_beside_a_devices_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UWS_", "THINGSPACE_"))}
    args = ["emulator", "--port", "0", "--devices", "5", "--devices-file", str(DATA / "devices.csv")]
    result = run_in_process(args, tmp_path, environment)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--devices: is for generated lines, and --devices-file gives the lines; give one of the two" in result.stderr


def test_the_settings_file_cannot_give_both_either(tmp_path: Path) -> None:
    config = tmp_path / "uws-adapter.ini"
    config.write_text("[emulator]\ndevices = 5\ndevices_file = lines.csv\n", encoding="utf-8")
    with pytest.raises(InputError, match="--devices: is for generated lines"):
        EmulatorSettings.load(config, environ={})


def test_either_alone_is_taken() -> None:
    assert EmulatorSettings().devices is None  # the command generates DEFAULT_DEVICES
    assert DEFAULT_DEVICES == 100
    assert EmulatorSettings(devices=0).devices == 0
    assert EmulatorSettings(devices_file="lines.csv").devices_file == "lines.csv"
