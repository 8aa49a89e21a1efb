#!/usr/bin/env bash
# Dependency floors: install uws-adapter on Python 3.9 (the oldest Python it supports) with every
# direct dependency (install_requires and every extra but dev and docs) at the oldest version
# setup.cfg allows (constraints/oldest.txt), and run the suite's fast lane (-m "not slow") against
# that installation. A floor that does not really work fails here.
#
# Why the fast lane and not the whole suite: CI has just run the whole suite (the README's test
# command) on the current dependencies. What the floors can break is our use of a dependency's API,
# and every dependency is exercised by the fast lane (zeep, lxml, requests/urllib3, xmlschema,
# waitress, uvicorn/httptools/uvloop, psycopg, prometheus_client, hypothesis, jsonschema, and
# suds-community and zeep as interop clients). The slow tests add load, kill -9 restarts, long
# fuzz runs and the non-Python interop clients (whose versions the floors do not pin): our own
# behaviour under stress, already proven by the run before this one.
#
# Idempotent: everything is built in a temporary folder that is removed on exit.
# Usage: .ci/floors.sh            (from anywhere; a few minutes on a busy 2-core machine; run as root: it may apt-get)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

step() { printf '\n=== floors: %s\n' "$*"; }

# Python 3.9: the image's pyenv builds it (/root/.pyenv/versions/3.9.x); Debian 12 has no
# python3.9 package, so without pyenv a python3.9 on PATH is the only other way.
py39=$(ls -d /root/.pyenv/versions/3.9*/bin/python3.9 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$py39" ]; then
  py39=$(command -v python3.9 || true)
fi
if [ -z "$py39" ]; then
  echo "floors: FAILED: no Python 3.9 on this machine (looked in /root/.pyenv/versions/3.9*/ and on PATH)." >&2
  echo "floors: the floors are only proven on the oldest supported Python; install Python 3.9 and re-run." >&2
  exit 1
fi
step "Python: $py39 ($("$py39" --version 2>&1))"

# The fast lane needs no interop client but the Python ones (suds, zeep), installed with .[test].

work=$(mktemp -d)
pg_started=false
cleanup() {
  if [ "$pg_started" = true ]; then UWS_PG_DIR=$pg_dir bash "$repo/.ci/postgres.sh" stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The store's PostgreSQL tests need a server (under CI=true they fail without one). A server the
# caller already gives (UWS_TEST_POSTGRES_URL) is used; otherwise one of our own, in a folder of
# our own, so that a server of CI's main job is neither reused nor stopped here.
if [ -z "${UWS_TEST_POSTGRES_URL:-}" ] && [ -f .ci/postgres.sh ]; then
  step "PostgreSQL server for the store tests (.ci/postgres.sh start)"
  pg_dir=/tmp/uws-postgres-floors
  pg_started=true
  eval "$(UWS_PG_DIR=$pg_dir bash "$repo/.ci/postgres.sh" start)"
fi
"$py39" -m venv "$work/venv"
py="$work/venv/bin/python"

step "install .[test] with -c constraints/oldest.txt"
"$py" -m pip install -q --upgrade pip
# Not editable: the suite must import the installed package and its floor dependencies.
"$py" -m pip install -q -c constraints/oldest.txt "$repo[test]"

step "every floor in setup.cfg is pinned in constraints/oldest.txt, and installed at it"
"$py" - "$repo" <<'PY'
import configparser, pathlib, sys
from importlib.metadata import version
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

repo = pathlib.Path(sys.argv[1])
cfg = configparser.ConfigParser(interpolation=None)
cfg.read(repo / "setup.cfg")
lines = cfg["options"]["install_requires"].splitlines()
for extra, requirements in cfg["options.extras_require"].items():
    if extra not in ("dev", "docs"):  # tools (linters, type checkers, the site builder) are not run against the floors
        lines += requirements.splitlines()
floors = {}
named = set()
for line in filter(None, (raw.strip() for raw in lines)):
    req = Requirement(line)
    named.add(canonicalize_name(req.name))
    if req.marker is not None and not req.marker.evaluate():
        continue  # not for this platform (uvloop on Windows)
    lows = [Version(spec.version) for spec in req.specifier if spec.operator == ">="]
    if len(lows) != 1:
        sys.exit(f"setup.cfg: {line!r} has no single '>=' floor; give every dependency one")
    floors[canonicalize_name(req.name)] = lows[0]
pins = {}
for raw in (repo / "constraints/oldest.txt").read_text().splitlines():
    line = raw.split("#", 1)[0].strip()
    if line:
        req = Requirement(line)
        pins[canonicalize_name(req.name)] = Version(str(req.specifier).lstrip("="))
problems = [f"{name}: pinned in constraints/oldest.txt, but not a dependency in setup.cfg" for name in sorted(set(pins) - named)]
for name, floor in sorted(floors.items()):
    installed = Version(version(name))
    if pins.get(name) != floor:
        problems.append(f"{name}: setup.cfg says >={floor}, constraints/oldest.txt pins {pins.get(name)}")
    elif installed != floor:
        problems.append(f"{name}: floor {floor}, but {installed} was installed")
    else:
        print(f"  {name} {installed}")
if problems:
    sys.exit("floors: setup.cfg and constraints/oldest.txt disagree:\n  " + "\n  ".join(problems))
PY

step "the fast lane (-m 'not slow') against the floors"
mkdir "$work/outside"
cd "$work/outside"
"$py" -c 'import uws_adapter, sys; f = uws_adapter.__file__; print("  uws_adapter from", f); sys.exit("site-packages" not in f)'
started=$(date +%s)
"$py" -m pytest -q -p no:cacheprovider -m "not slow" "$repo/tests"
echo "floors: the fast lane passed at the floors in $(($(date +%s) - started)) s"
