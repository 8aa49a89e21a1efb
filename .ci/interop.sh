#!/usr/bin/env bash
# The interop suite (tests/interop, marker "interop"): third-party SOAP stacks and the vendor's REST
# SDK against our emulator and bridge on loopback.
#  1. installs the clients' toolchains from Debian (PHP SoapClient, JAX-WS wsimport + javac, Perl
#     SOAP::Lite, Node.js + npm, Mono with mcs, wsdl, svcutil, WCF and ASMX), only those not already there;
#  2. warms npm's cache with the node-soap version the suite pins (tests/interop/clients/js), so a
#     registry that cannot be reached fails here, by name;
#  3. runs the suite with CI=true: a client that is missing fails the run instead of being skipped.
#  The vendor's REST SDK is pip-installed once per machine into ~/.cache/uws-adapter
#  (tests/interop/vendor_sdk.py; the suite installs it there itself when it is missing).
# The suite itself builds each client from the WSDL our server serves, into a temp folder per run
# (wsimport output, npm install, the .NET proxies and mcs builds).
# Idempotent; works as root on a fresh Debian machine.
# Usage: .ci/interop.sh [--install-only] [extra pytest args]
#   --install-only: steps 1 and 2 only, for a CI that runs the suite within its normal test command
#   (the default `python -m pytest` includes tests/interop, and under CI=true fails on a missing client).
set -euo pipefail
install_only=false
if [ "${1:-}" = "--install-only" ]; then install_only=true; shift; fi
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
export CI="${CI:-true}"
started=$(date +%s)

step() { printf '\n=== interop: %s\n' "$*"; }

# Debian package -> a file it installs: the package is installed only when the file is missing.
packages=(
  "php-cli:/usr/bin/php"
  "php-soap:(php -m lists soap)"
  "libsoap-lite-perl:/usr/share/perl5/SOAP/Lite.pm"
  "jaxws:/usr/bin/wsimport"
  "default-jdk-headless:/usr/bin/javac"
  "nodejs:/usr/bin/node"
  "npm:/usr/bin/npm"
  # .NET: mcs, the wsdl and svcutil proxy generators; WCF (System.ServiceModel); ASMX (System.Web.Services).
  "mono-devel:/usr/lib/mono/4.5/svcutil.exe"
  "libmono-system-servicemodel4.0a-cil:/usr/lib/mono/4.5/System.ServiceModel.dll"
  "libmono-system-web-services4.0-cil:/usr/lib/mono/4.5/System.Web.Services.dll"
)
missing=()
for entry in "${packages[@]}"; do
  name=${entry%%:*}
  probe=${entry#*:}
  # php-soap is a metapackage: its extension lives under the PHP version's own package.
  if [ "$name" = php-soap ]; then
    if command -v php >/dev/null && php -m 2>/dev/null | grep -x soap >/dev/null; then continue; fi
  elif [ -e "$probe" ]; then
    continue
  fi
  missing+=("$name")
done
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  step "Debian packages already installed"
fi

step "client versions"
php -r 'echo "PHP ", PHP_VERSION, " soap ", phpversion("soap"), "\n";'
perl -MSOAP::Lite -e 'print "SOAP::Lite $SOAP::Lite::VERSION (Perl $^V)\n"'
wsimport -version 2>&1 | head -n 1
javac -version 2>&1
echo "node $(node --version), npm $(npm --version)"
mono --version | head -n 1
# node-soap 1.13 needs Node.js 20.19 or later (Debian 12's own nodejs is 18; this machine kind ships 20).
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
  || { echo "node $(node --version) is too old for node-soap 1.13: install Node.js 20.19 or later" >&2; exit 1; }

step "npm cache: node-soap as pinned in tests/interop/clients/js/package-lock.json"
soap_version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/soap"]["version"])' \
  tests/interop/clients/js/package-lock.json)
npm cache add "soap@${soap_version}" --no-audit --no-fund >/dev/null
echo "soap@${soap_version} cached"

step "the vendor's REST SDK, as pinned in tests/interop/clients/py/vendor-sdk-requirements.txt"
# Only a warm-up: where python3 has no pip, the suite installs it with the .venv's own python.
if where=$(python3 tests/interop/vendor_sdk.py); then
  echo "installed in $where"
else
  echo "not installed here: the suite installs it when it first needs it"
fi
if [ "$install_only" = true ]; then
  step "clients installed in $(( $(date +%s) - started )) s"
  exit 0
fi

step "python environment"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q -e '.[test]'
.venv/bin/python -c 'import zeep, suds; print("zeep", zeep.__version__, "/ suds-community", suds.__version__)'

step "python -m pytest -m interop tests/interop"
.venv/bin/python -m pytest -p no:cacheprovider -m interop tests/interop "$@"
step "interop suite passed in $(( $(date +%s) - started )) s (installs included)"
