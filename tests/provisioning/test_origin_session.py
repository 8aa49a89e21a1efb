"""The engine's session reads the environment's proxy and CA settings once per origin: what it gives
is requests' own answer for that origin (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE),
and requests sent through it take the proxy the environment names, over real loopback servers."""

from __future__ import annotations

import copy
import pickle
from typing import Dict, List

import pytest
import requests
from servers import LoopbackHttp, Request

from uws_adapter.provisioning.engine import Engine, Outgoing, Stakes
from uws_adapter.provisioning.options import SendOptions
from uws_adapter.provisioning.transport import OriginSession

_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)  # fmt: skip
_URLS = (
    "http://127.0.0.1:8080/m2m/v1/devices/actions/suspend",
    "http://127.0.0.1:8080/other/path",
    "https://carrier.example:443/api/v2/CarrierService.svc",
    "http://listener.internal.example:9000/callbacks",
    "https://localhost:8443/",
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA variable but those a test sets."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"HTTP_PROXY": "http://proxy.example:3128", "HTTPS_PROXY": "http://secure-proxy.example:3129"},
        {"http_proxy": "http://proxy.example:3128", "no_proxy": "127.0.0.1,.internal.example"},
        {"ALL_PROXY": "http://all.example:1080", "NO_PROXY": "localhost"},
        {"HTTPS_PROXY": "http://secure-proxy.example:3129", "NO_PROXY": "*"},
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/corporate.pem"},
        {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem", "HTTP_PROXY": "http://proxy.example:3128"},
    ],
    ids=["none", "proxies", "no-proxy-list", "all-proxy", "no-proxy-star", "ca-bundle", "curl-bundle"],
)
def test_the_settings_are_requests_own_for_each_origin(
    environment: pytest.MonkeyPatch, variables: Dict[str, str]
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    ours, theirs = OriginSession(), requests.Session()
    for verify in (True, False, "/tmp/given.pem"):
        for url in _URLS * 2:  # the second time from what was kept
            expected = theirs.merge_environment_settings(url, {}, True, verify, None)
            assert ours.merge_environment_settings(url, {}, True, verify, None) == expected, (url, verify)


def test_the_sessions_own_settings_and_given_proxies_count(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PROXY", "http://proxy.example:3128")
    ours, theirs = OriginSession(), requests.Session()
    url = _URLS[0]
    ours.merge_environment_settings(url, {}, True, True, None)
    for session in (ours, theirs):  # changed after a request: seen at the next
        session.proxies = {"https": "http://session-proxy.example:8000"}
        session.verify = "/etc/ssl/session.pem"
    assert ours.merge_environment_settings(url, {}, True, True, None) == theirs.merge_environment_settings(
        url, {}, True, True, None
    )
    given = {"http": "http://given.example:1"}
    assert ours.merge_environment_settings(url, dict(given), True, True, None) == theirs.merge_environment_settings(
        url, dict(given), True, True, None
    )
    for session in (ours, theirs):  # a setting that cannot be kept under a key: read each time
        session.cert = ["/etc/ssl/client.pem", "/etc/ssl/client.key"]  # type: ignore[assignment]
    assert ours.merge_environment_settings(url, {}, True, True, None) == theirs.merge_environment_settings(
        url, {}, True, True, None
    )
    ours.trust_env = theirs.trust_env = False
    assert ours.merge_environment_settings(url, {}, True, True, None) == theirs.merge_environment_settings(
        url, {}, True, True, None
    )


def test_the_engine_sends_through_the_proxy_the_environment_names(environment: pytest.MonkeyPatch) -> None:
    seen: Dict[str, List[str]] = {"proxy": [], "direct": []}

    def proxy(request: Request) -> tuple:  # type: ignore[type-arg]
        seen["proxy"].append(request.path)  # a forward proxy is sent the absolute URL
        return (200, "text/plain", b"from the proxy")

    def direct(request: Request) -> tuple:  # type: ignore[type-arg]
        seen["direct"].append(request.path)
        return (200, "text/plain", b"direct")

    with LoopbackHttp(proxy) as forward, LoopbackHttp(direct) as target:
        environment.setenv("HTTP_PROXY", forward.url)
        environment.setenv("NO_PROXY", "127.0.0.1")  # the target; localhost is not in it
        engine = Engine(SendOptions(connect_retries=0))
        proxied_url = "http://localhost:9/callbacks"  # nothing listens there: only the proxy can answer
        try:
            for _ in range(2):  # the second time from what was kept
                answer = engine.send(Outgoing("POST", proxied_url, "test", (), b"<a/>", stakes=Stakes.REPEATABLE))
                assert answer.content == b"from the proxy"
                answer = engine.send(Outgoing("POST", target.url + "/x", "test", (), b"<a/>", stakes=Stakes.REPEATABLE))
                assert answer.content == b"direct"
        finally:
            engine.close()
        assert seen == {"proxy": [proxied_url] * 2, "direct": ["/x"] * 2}

        # A new engine reads the environment anew.
        environment.delenv("HTTP_PROXY")
        later = Engine(SendOptions(connect_retries=0))
        try:
            answer = later.send(Outgoing("POST", forward.url + "/y", "test", (), b"<a/>", stakes=Stakes.REPEATABLE))
        finally:
            later.close()
        assert seen["proxy"][-1] == "/y"  # straight to it, as a server, not as a proxy


def test_a_copied_or_unpickled_session_still_sends(environment: pytest.MonkeyPatch) -> None:
    # requests copies and pickles only the attributes it names: the cache came back missing.
    environment.setenv("HTTP_PROXY", "http://proxy.example:3128")
    session = OriginSession()
    session.merge_environment_settings(_URLS[0], {}, True, True, None)
    expected = requests.Session().merge_environment_settings(_URLS[0], {}, True, True, None)
    for other in (copy.copy(session), pickle.loads(pickle.dumps(session))):
        assert other.merge_environment_settings(_URLS[0], {}, True, True, None) == expected


def test_the_key_is_the_origin_without_user_or_password(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PROXY", "http://proxy.example:3128")
    environment.setenv("NO_PROXY", "bypassed.example:8080,[::1]")
    ours, theirs = OriginSession(), requests.Session()
    urls = [
        "http://alice:first-secret@carrier.example:8080/a", "http://bob:second-secret@carrier.example:8080/b",
        "http://CARRIER.example:8080/c", "http://carrier.example/d", "http://carrier.example:80/e",
        "http://bypassed.example:8080/f", "http://BYPASSED.example:8080/g", "http://bypassed.example:8081/h",
        "http://[::1]:8080/i", "http://user:pw@[::1]:8080/j",
    ]  # fmt: skip
    for url in urls * 2:
        expected = theirs.merge_environment_settings(url, {}, True, True, None)
        assert ours.merge_environment_settings(url, {}, True, True, None) == expected, url
    kept = repr(vars(ours))
    # Nothing of a URL's user and password is kept.
    assert "secret" not in kept
    assert "alice" not in kept
    # One entry per origin as requests reads it (host in lower case, port): not one per user or spelling.
    hosts = {(key[1], key[2]) for key in ours._origins}
    assert len(ours._origins) == len(hosts) == 6


def test_session_proxies_of_none_are_requests_own(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PROXY", "http://proxy.example:3128")
    ours, theirs = OriginSession(), requests.Session()
    ours.proxies = theirs.proxies = None  # type: ignore[assignment]
    for url in _URLS:
        assert ours.merge_environment_settings(url, {}, True, True, None) == theirs.merge_environment_settings(
            url, {}, True, True, None
        )
