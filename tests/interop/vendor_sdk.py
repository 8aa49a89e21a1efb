"""Where the vendor's REST SDK (``tests/interop/clients/py/vendor-sdk-requirements.txt``) is
installed for the interop suite: once per machine, user and interpreter, in a cache folder outside
the checkout, so a run does not pay pip's 25-65 s again. ``.ci/interop.sh --install-only`` warms it
by running this file; the suite installs it there itself when it is missing.

    python tests/interop/vendor_sdk.py     # install (if missing) and print the folder
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Tuple

REQUIREMENTS = Path(__file__).parent / "clients" / "py" / "vendor-sdk-requirements.txt"
#: Written last: a folder without it is an interrupted install, removed and done again.
DONE = ".installed"


def cache_folder() -> Path:
    """The pinned requirements' folder for this interpreter (its version and the pins in the name)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uws-adapter"
    pins = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return root / f"vendor-sdk-py{sys.version_info[0]}.{sys.version_info[1]}-{pins}"


def install() -> Tuple[Path, str]:
    """(the folder, "" once installed; else pip's error output). Installed beside the folder and
    renamed into place, so two runs at once never see half an install."""
    folder = cache_folder()
    if (folder / DONE).exists():
        return folder, ""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(staging),
             "-r", str(REQUIREMENTS)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return folder, done.stderr[-2000:] or f"pip exited {done.returncode}"
        (staging / DONE).write_text(REQUIREMENTS.read_text())
        if (folder / DONE).exists():  # another run finished first: keep its copy
            return folder, ""
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted install's remains
        try:
            staging.rename(folder)
        except OSError:  # renamed into place by another run between the check and here
            if not (folder / DONE).exists():
                raise
        return folder, ""
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    where, problem = install()
    if problem:
        sys.exit(f"pip could not install {REQUIREMENTS.read_text().strip()}: {problem}")
    print(where)
