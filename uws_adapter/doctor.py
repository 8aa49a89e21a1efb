"""``uws-adapter doctor``: everything that can be checked before the first real request, without
provisioning anything (URLs and TLS, logins, WSDL, callback listeners, store, clock; in order in
:func:`run_checks`). One :class:`Check` per thing, each PASS, WARN or FAIL with the fix.

No check prints a secret: details come from our own errors, which never hold one, and URLs are
shown masked.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit

from uws_adapter.config import ENVIRONMENT, Settings, rest_client
from uws_adapter.errors import LOCKOUT, InputError, ServiceFault, UwsAdapterError
from uws_adapter.netcheck import clock_skew, fetch, origin, reach
from uws_adapter.redaction import masked_url
from uws_adapter.wire import UWS_SERVICES

__all__ = ["FAIL", "PASS", "WARN", "Check", "DoctorOptions", "run_checks", "summary"]

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
#: Clock skew (seconds) that is worth a warning, and one that fails: session and token lifetimes,
#: certificate validity and the dates in callbacks all read the clock [inferred thresholds].
SKEW_WARN, SKEW_FAIL = 30.0, 300.0
#: How a uws-login check that the service refused starts (the REST session then is not tried).
LOGIN_REFUSED = "LogIn refused"
#: The settings of the login that UWS LogIn and the REST M2M session both use.
_LOGIN = f"{ENVIRONMENT['username']} and {ENVIRONMENT['password']}"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status`` PASS, WARN or FAIL, what was found, and the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -- fix: {self.fix}" if self.fix and self.status != PASS else ""
        return f"{self.status}  {self.name:<12} {self.detail}{fix}"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorOptions:
    """What to check: the settings the other commands use, and what only doctor asks for."""

    settings: Settings
    account: Optional[str] = None
    receiver_url: Optional[str] = None
    db: Optional[str] = None
    token: Optional[str] = None
    clock: Callable[[], float] = time.time


def _rest_configured(settings: Settings) -> bool:
    return bool(settings.client_id and settings.client_secret)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ServiceFault):
        return f"{exc.code}: {exc.message}"[:400]
    return " ".join(str(exc).split())[:400]


def check_url(name: str, url: str, timeout: float) -> Check:
    found = reach(url, timeout=timeout)
    shown = masked_url(url)
    if not found.addresses:
        return Check(name, FAIL, f"{shown}: {found.problem}", "check the host name and this machine's DNS")
    where = f"{shown} resolves ({', '.join(found.addresses[:3])})"
    if found.tls is False:
        return Check(
            name, FAIL, f"{where}; {found.problem}", "fix the certificate, or trust its CA with REQUESTS_CA_BUNDLE"
        )
    if found.problem:
        return Check(name, FAIL, f"{where}; {found.problem}", "check the port, firewalls and proxies")
    if found.tls:
        return Check(name, PASS, f"{where}; TLS verifies")
    if found.host in ("localhost", "127.0.0.1", "::1"):
        return Check(name, PASS, f"{where}; plain http on loopback")
    return Check(name, WARN, f"{where}; plain http: logins and callbacks travel unencrypted", "use the https URL")


def _login_logout(name: str, client: Any, refused: str, failed: str, fix: str, passed: str) -> Check:
    """``client``'s login, then its logout, as the check ``name``."""
    try:
        client.login()
        client.logout()
    except ServiceFault as exc:
        return Check(name, FAIL, f"{refused} ({_reason(exc)})", f"check {_LOGIN}; {LOCKOUT}")
    except UwsAdapterError as exc:
        return Check(name, FAIL, f"{failed}: {_reason(exc)}", fix)
    return Check(name, PASS, passed)


def check_uws_login(options: DoctorOptions) -> Check:
    from dataclasses import replace

    from uws_adapter.config import connect

    settings = options.settings
    if not (settings.username and settings.password):
        if options.token:
            return Check("uws-login", WARN, "a session token is given, no login: LogIn is not checked",
                         f"set {_LOGIN} to check it")  # fmt: skip
        return Check("uws-login", FAIL, "no UWS login configured", f"set {_LOGIN} (or --config)")
    # Through the client factory: retiring UWS deletes the client, not this check's import of it.
    client = connect(replace(settings, backend="soap"))
    try:
        return _login_logout(
            "uws-login", client, LOGIN_REFUSED, "LogIn/LogOut failed", "check --endpoint and the network",
            f"LogIn and LogOut answered at {masked_url(settings.soap_url)}",
        )  # fmt: skip
    finally:
        client.close()


def check_rest(options: DoctorOptions, *, login_refused: bool = False) -> List[Check]:
    """The OAuth2 token, the M2M session, the listeners. ``login_refused``: UWS refused the same
    login already, so it is not tried again (each refusal counts towards the lockout)."""
    settings = options.settings
    checks: List[Check] = []
    client = rest_client(settings, options=settings.send_options.with_(connect_retries=0))
    try:
        try:
            client.bearer_token()
        except UwsAdapterError as exc:
            fix = f"check {ENVIRONMENT['client_id']} and {ENVIRONMENT['client_secret']} and --rest-url"
            return [Check("rest-oauth", FAIL, f"no OAuth2 token: {_reason(exc)}", fix)]
        checks.append(Check("rest-oauth", PASS, f"OAuth2 token issued at {masked_url(settings.rest_url)}"))
        if not (settings.username and settings.password):
            checks.append(Check("rest-session", FAIL, "no login for the M2M session", f"set {_LOGIN}"))
        elif login_refused:
            said = "not tried: UWS refused the same login (each refusal counts towards the lockout)"
            checks.append(Check("rest-session", WARN, said, f"fix {_LOGIN} first"))
        else:
            checks.append(_login_logout(
                "rest-session", client, "session login refused", "session login/logout failed", "check --rest-url",
                "M2M session login and logout answered",
            ))  # fmt: skip
        if checks[-1].status == PASS:
            checks.append(check_listeners(options, client))
        else:
            checks.append(Check("listeners", WARN, "not checked: no M2M session", "fix rest-session first"))
    finally:
        client.close()
    return checks


def _same_url(a: str, b: str) -> bool:
    def key(url: str) -> Any:
        parts = urlsplit(url.strip())
        return origin(url), parts.path.rstrip("/") or "/", parts.query

    try:
        return bool(key(a) == key(b))
    except ValueError:  # a port that is not a number (InputError), a URL urlsplit refuses (an unclosed [)
        return a.strip() == b.strip()


def check_listeners(options: DoctorOptions, client: Any) -> Check:
    """The CarrierService listener of ``--account``, against ``--receiver-url``."""
    if not options.account:
        return Check("listeners", WARN, "not checked: no account given",
                     "give --account to list the account's REST callback listeners")  # fmt: skip
    try:
        found = client.callback_listeners(options.account)
    except UwsAdapterError as exc:
        return Check("listeners", FAIL, f"cannot list the listeners of {options.account}: {_reason(exc)}",
                     "check --account (leading zeros count) and the REST credentials")  # fmt: skip
    carrier = [listener for listener in found if listener.service == "CarrierService"]
    others = ", ".join(sorted(f"{l.service} {masked_url(l.url)}" for l in found if l.service != "CarrierService"))  # noqa: E741
    also = f" (also: {others})" if others else ""
    register = f"uws-adapter listeners register {options.account} {options.receiver_url or 'URL'}"
    if not carrier:
        return Check("listeners", FAIL, f"no CarrierService listener for {options.account}: callbacks go nowhere{also}",
                     f"{register} (a UWS registration must be removed through UWS first)")  # fmt: skip
    url = carrier[0].url
    if options.receiver_url is None:
        return Check("listeners", WARN, f"CarrierService callbacks go to {masked_url(url)}{also}",
                     "give --receiver-url to check that it is the receiver you run")  # fmt: skip
    if not _same_url(url, options.receiver_url):
        return Check("listeners", FAIL,
                     f"CarrierService callbacks go to {masked_url(url)}, not to {masked_url(options.receiver_url)}",
                     f"uws-adapter listeners remove {options.account}, then {register}")  # fmt: skip
    return Check("listeners", PASS, f"CarrierService callbacks go to {masked_url(url)}, your receiver{also}")


def check_wsdl(options: DoctorOptions) -> Check:
    from uws_adapter.wsdldiff import diff

    settings = options.settings
    base = settings.soap_url.rstrip("/")
    breaking: List[str] = []
    benign = 0
    compared = []
    for service in UWS_SERVICES:
        url = f"{base}/{service}.svc?wsdl"
        try:
            result = diff(url, timeout=settings.timeout, deadline=settings.deadline)
        except InputError as exc:
            return Check("wsdl", WARN, f"no metadata to compare: {exc.problem}",
                         "it may not be published; a one-device request tells (docs/first-contact.md)")  # fmt: skip
        compared.append(service)
        breaking += [f"{d.kind} at {d.where}" for d in result.differences if d.verdict == "breaking"]
        benign += sum(d.verdict == "benign" for d in result.differences)
    if breaking:
        shown = "; ".join(breaking[:3]) + (f"; {len(breaking) - 3} more" if len(breaking) > 3 else "")
        return Check("wsdl", FAIL, f"{len(breaking)} breaking difference(s): {shown}",
                     f"run uws-adapter wsdl diff {masked_url(base)}/CarrierService.svc?wsdl and see "
                     "docs/first-contact.md")  # fmt: skip
    return Check("wsdl", PASS, f"{', '.join(compared)}: nothing breaking ({benign} benign difference(s))")


def check_store(options: DoctorOptions) -> Check:
    from uws_adapter.store import describe_store, is_postgres_url, no_store_at, other_url, schema_versions

    location = options.db or options.settings.db
    if not location:
        return Check("store", WARN, "no store configured: requests are not recorded",
                     f"give --db (or {ENVIRONMENT['db']}) for status, wait and the daily budget")  # fmt: skip
    shown = describe_store(location)
    try:
        version, expected = schema_versions(location)
    except UwsAdapterError as exc:
        if is_postgres_url(location) or other_url(location) or no_store_at(location) is None or os.path.isdir(location):
            # There, but it cannot be opened or reached (not a database, another program's, a login
            # the server refuses, a folder): the reason says why; --create would fail the same way.
            fix = "point --db at the receiver's store (the file or URL it writes)"
            return Check("store", FAIL, _reason(exc), fix)
        # db upgrade alone refuses a missing store: the fix names the --create that makes one
        create = f"uws-adapter db upgrade --create --db {shown}"
        return Check("store", FAIL, _reason(exc), f"point --db at the receiver's store, or create one: {create}")
    if version < expected:
        return Check("store", FAIL, f"{shown}: schema {version}, this release needs {expected}",
                     f"uws-adapter db upgrade --db {shown}")  # fmt: skip
    if version > expected:
        return Check("store", FAIL, f"{shown}: schema {version} is a newer release's (this one: {expected})",
                     "upgrade uws-adapter to the release that wrote it")  # fmt: skip
    return Check("store", PASS, f"{shown}: reachable, schema {version} (current)")


#: How the clock check's bounds are raised: its deadline is the client's, its size cap its own.
_CLOCK_LIMITS = (
    "raise --deadline (UWS_ADAPTER_DEADLINE) if the service is just slow",
    "the clock check reads one page's Date header: check the URL",
)


def check_clock(options: DoctorOptions, url: str) -> Check:
    settings = options.settings
    try:
        answer = fetch(
            url, timeout=settings.timeout, deadline=settings.deadline, max_bytes=256 * 1024, limits=_CLOCK_LIMITS
        )
    except UwsAdapterError as exc:
        return Check("clock", WARN, f"not checked: {_reason(exc)}", "check the URL")
    skew = clock_skew(answer.headers, options.clock)
    if skew is None:
        return Check("clock", WARN, "the server sent no Date header to compare with", "compare with NTP instead")
    said = f"local clock {abs(skew):.0f} s {'ahead of' if skew >= 0 else 'behind'} the server's"
    fix = "synchronise this machine's clock (NTP: timedatectl set-ntp true)"
    if abs(skew) > SKEW_FAIL:
        return Check("clock", FAIL, said, fix)
    if abs(skew) > SKEW_WARN:
        return Check("clock", WARN, said, fix)
    return Check("clock", PASS, said)


def run_checks(options: DoctorOptions) -> List[Check]:
    """Every check, in order; a URL that fails skips what needs it (WARN: not checked)."""
    settings = options.settings
    connect = settings.timeout[0]
    checks: List[Check] = []
    uws = settings.backend == "soap"
    rest = settings.backend == "rest" or _rest_configured(settings)
    reachable: Dict[str, bool] = {}
    for side, wanted, url in (("uws", uws, settings.soap_url), ("rest", rest, settings.rest_url)):
        if wanted:
            checks.append(check_url(f"{side}-url", url, connect))
            reachable[side] = checks[-1].status != FAIL
    if uws:
        if reachable["uws"]:
            checks += [check_uws_login(options), check_wsdl(options)]
        else:
            checks += [Check(name, WARN, "not checked: the UWS URL failed", "fix uws-url first")
                       for name in ("uws-login", "wsdl")]  # fmt: skip
    if rest:
        if settings.backend == "rest" and not _rest_configured(settings):
            checks.append(Check("rest-oauth", FAIL, "no OAuth2 keys configured",
                                f"set {ENVIRONMENT['client_id']} and {ENVIRONMENT['client_secret']}"))  # fmt: skip
        elif reachable["rest"]:
            refused = any(c.name == "uws-login" and c.detail.startswith(LOGIN_REFUSED) for c in checks)
            checks += check_rest(options, login_refused=refused)
        else:
            checks += [Check(name, WARN, "not checked: the REST URL failed", "fix rest-url first")
                       for name in ("rest-oauth", "rest-session", "listeners")]  # fmt: skip
    else:
        fix = f"set {ENVIRONMENT['client_id']} and {ENVIRONMENT['client_secret']} to check them"
        said = "not checked: REST callback listeners are listed through the REST API"
        checks.append(Check("listeners", WARN, said, fix))
    checks.append(check_store(options))
    clock_url = settings.soap_url if uws and reachable.get("uws") else settings.rest_url
    if reachable.get("uws") or reachable.get("rest"):
        checks.append(check_clock(options, clock_url))
    else:
        checks.append(Check("clock", WARN, "not checked: no server answered", "fix the URL checks first"))
    return checks


def summary(checks: List[Check]) -> str:
    counts = {status: sum(check.status == status for check in checks) for status in (PASS, WARN, FAIL)}
    verdict = "nothing failed" if not counts[FAIL] else "fix what failed before the first real request"
    return f"doctor: {len(checks)} checks: {counts[PASS]} PASS, {counts[WARN]} WARN, {counts[FAIL]} FAIL; {verdict}"
