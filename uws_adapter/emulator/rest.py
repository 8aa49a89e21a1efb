"""The emulator's REST M2M front, over the same inventory and state machine as UWS (what it serves:
docs/services.md, "The emulator"). Errors are ``{errorCode, errorMessage}`` with HTTP 400 [doc]; a
missing or expired bearer token is a bare HTTP 401, as an API gateway answers. Bodies are checked
strictly, so that the emulator catches a client that drifts from the documented bodies.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import OrderedDict
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote

from uws_adapter.edge import Answer
from uws_adapter.emulator.core import Carrier, EmulatorFault, Listener, Target, listener_url_problem
from uws_adapter.emulator.listing import LIST_FIELDS, device_list
from uws_adapter.errors import Code, DocumentError, InputError, Refused
from uws_adapter.jsonsafe import loads_untrusted
from uws_adapter.model.devices import DeviceIdentifier
from uws_adapter.model.selection import CustomField
from uws_adapter.provisioning.urls import LISTENER_URL_FIX
from uws_adapter.rest.client import SESSION_LOGOUT_PATH
from uws_adapter.rest.devicelist import PAGE_LIMIT
from uws_adapter.soap.sessions import known_login
from uws_adapter.wire import CALLBACK_SERVICES, M2M_TOKEN_HEADER, OAUTH_TOKEN_PATH, SESSION_LOGIN_PATH

_JSON = "application/json"
_M2M = "/api/m2m/v1"  # the prefix of SESSION_LOGIN_PATH and CALLBACKS_PATH, under the base URL
_CHANGE_KEYS = {"accountName", "customFields", "devices", "groupName", "servicePlan"}
_UNDEFINED = Code.REQUEST_UNDEFINED


def _json(status: int, value: object) -> Answer:
    return Answer(status, _JSON, json.dumps(value).encode())


class RestFront:
    def __init__(self, emulator: Carrier) -> None:
        self.emulator = emulator
        # In the order issued, which is the order they expire (one lifetime): an OrderedDict, whose
        # oldest entry is found at once where a dict's is found past the slots of those deleted.
        # The expired go first, so that a client asking for tokens in a loop holds only the live ones.
        self._bearers: OrderedDict[str, float] = OrderedDict()
        #: Devices per device-list answer: 2000 [doc]; tests lower it to see paging.
        self.list_page_size = PAGE_LIMIT

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """One request; ``headers`` with lower-case names."""
        emulator = self.emulator
        path = path.partition("?")[0]
        emulator.count("rest_requests")
        if (method, path) == ("POST", "/api" + OAUTH_TOKEN_PATH):
            return self._token(headers, body)
        if not path.startswith(_M2M + "/"):
            return _json(404, {"error": "not found"})
        if not self._bearer_ok(headers.get("authorization", "")):
            return _json(401, {"error": "invalid_token", "error_description": "missing or expired bearer token"})
        try:
            answer = self._m2m(method, path[len(_M2M) :], headers, body)
            # A device-list page with more to come is answered 202 [doc: the vendor SDK's model].
            more = isinstance(answer, dict) and answer.get("hasMoreData") is True
            return _json(202 if more else 200, answer)
        except Refused as fault:  # EmulatorFault, or a session refused
            emulator.count("faults")
            status = fault.http_status if isinstance(fault, EmulatorFault) else 400
            return _json(status, {"errorCode": fault.code, "errorMessage": str(fault)})

    # OAuth2 -------------------------------------------------------------------------------------

    def _token(self, headers: Mapping[str, str], body: bytes) -> Answer:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
        grant = parse_qs(body.decode("utf-8", "replace")).get("grant_type", [""])[0]
        if scheme.lower() != "basic" or not client_id or not known_login(self.emulator.clients, client_id, secret):
            return _json(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        if grant != "client_credentials":
            return _json(
                400, {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}
            )
        token = uuid.uuid4().hex
        lifetime = self.emulator.bearer_lifetime
        with self.emulator.lock:
            now = self.emulator.clock()
            while self._bearers and next(iter(self._bearers.values())) <= now:
                self._bearers.popitem(last=False)
            self._bearers[token] = now + lifetime
            self.emulator.counters["oauth_tokens"] += 1
        return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": int(lifetime)})

    def _bearer_ok(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self.emulator.lock:
            expires = self._bearers.get(token.strip())
        return scheme.lower() == "bearer" and expires is not None and self.emulator.clock() < expires

    # M2M ----------------------------------------------------------------------------------------

    def _m2m(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Any:
        """Routed first, the body read only by the operations that take one: the vendor SDK POSTs
        session/logout with no body at all."""
        emulator = self.emulator
        if (method, "/m2m/v1" + path) == ("POST", SESSION_LOGIN_PATH):
            data = _object(body)
            username, password = data.get("username"), data.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                raise EmulatorFault(_UNDEFINED, "username and password are required strings")
            return {"sessionToken": emulator.open_session(username, password)}
        token = headers.get(M2M_TOKEN_HEADER.lower())
        emulator.touch_session(token)
        if (method, "/m2m/v1" + path) == ("POST", SESSION_LOGOUT_PATH):
            emulator.close_session(token)  # no body is read: the SDK sends none [doc]
            return {"sessionToken": token}
        if method == "POST" and path in ("/devices/actions/restore", "/devices/actions/suspend"):
            action = "Restore" if path.endswith("restore") else "Suspend"
            return {"requestId": self._change(action, _object(body))}
        if (method, path) == ("POST", "/devices/profile/actions/profile_resume"):
            data = _object(body)
            _only(data, {"devices", "accountName", "servicePlan"})
            account = _string(data, "accountName")
            if account is None:
                raise EmulatorFault(_UNDEFINED, "accountName is required")
            return {"requestId": emulator.provision("ProfileResume", emulator.listed(_devices(data)), account=account)}
        if (method, path) == ("POST", "/devices/actions/list"):
            data = _object(body)
            fields = _custom_fields(data)
            _only(data, LIST_FIELDS)
            for key in ("accountName", "groupName", "servicePlan", "currentState"):
                _string(data, key)
            emulator.check_account(data.get("accountName"))
            with emulator.lock:
                return device_list(emulator.devices, data, fields, page_size=self.list_page_size)
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:1] == ["callbacks"] and len(parts) >= 2:
            return self._callbacks(method, parts[1], parts[2:], body)
        raise EmulatorFault(_UNDEFINED, f"{method} {path} is not an M2M operation", http_status=404)

    def _change(self, action: str, data: Mapping[str, Any]) -> str:
        emulator = self.emulator
        # withBilling is a suspend field only: the restore page lists accountName, customFields,
        # devices, groupName and servicePlan, and no withBilling [doc: rest-restore-devices], so a
        # restore carrying it is refused as an unknown field, as every undocumented field is.
        _only(data, _CHANGE_KEYS | ({"withBilling"} if action == "Suspend" else set()))
        if "withBilling" in data and not isinstance(data["withBilling"], bool):
            raise EmulatorFault(_UNDEFINED, "withBilling must be true or false")
        account = _string(data, "accountName")
        if "devices" in data:
            mixed = sorted({"groupName", "servicePlan", "customFields"} & set(data))
            if mixed:
                raise EmulatorFault(_UNDEFINED, f"do not use {', '.join(mixed)} with devices")
            emulator.check_account(account)
            return emulator.provision(action, emulator.listed(_devices(data)), account=account)
        targets: List[Target] = emulator.query(
            account, _string(data, "groupName"), _string(data, "servicePlan"), _custom_fields(data)
        )
        return emulator.provision(action, targets, account=account)

    def _callbacks(self, method: str, account: str, rest: List[str], body: bytes) -> Any:
        """Listener registration, listing and removal, answered with ``accountName``,
        ``serviceName`` and ``url`` as the vendor's API and SDK models
        (``CallbackActionResult``, ``ConnectivityManagementCallback``) have them [doc]; the
        registration body names the service ``name`` [doc]."""
        emulator = self.emulator
        # Each API sees and manages the listeners registered through it; a service has one
        # listener per account, so registering it through the other API is refused [inferred].
        if method == "GET" and not rest:
            with emulator.lock:
                return [
                    {"accountName": acc, "serviceName": service, "url": listener.url}
                    for (acc, service), listener in sorted(emulator.listeners.items())
                    if acc == account and listener.api == "rest"
                ]
        if method == "DELETE" and len(rest) == 2 and rest[0] == "name":
            with emulator.lock:
                existing = emulator.listeners.get((account, rest[1]))
                if existing is None or existing.api != "rest":  # the code is [inferred]
                    raise EmulatorFault(Code.CALLBACK_NOT_FOUND, f"no {rest[1]} listener registered over REST")
                del emulator.listeners[(account, rest[1])]
            return {"accountName": account, "serviceName": rest[1]}
        if method == "POST" and not rest:
            data = _object(body)
            _only(data, {"name", "url", "username", "password"})
            name, url = _string(data, "name"), _string(data, "url")
            if name not in CALLBACK_SERVICES or url is None:
                raise EmulatorFault(_UNDEFINED, f"name must be one of {', '.join(CALLBACK_SERVICES)} and url http(s)")
            problem = listener_url_problem(url)
            if problem is not None:
                raise EmulatorFault(_UNDEFINED, f"url: {problem}; {LISTENER_URL_FIX}")
            with emulator.lock:
                existing = emulator.listeners.get((account, name))
                if existing is not None and existing.api == "soap":
                    raise EmulatorFault(
                        Code.CALLBACK_REGISTERED,  # [inferred]
                        f"{name} is registered through UWS for {account}: unregister it there first",
                    )
                listener = Listener(url, _string(data, "username") or "", _string(data, "password") or "", "rest")
                emulator.listeners[(account, name)] = listener
            return {"accountName": account, "serviceName": name}
        raise EmulatorFault(_UNDEFINED, f"{method} callbacks/{'/'.join(rest)} is not an operation", http_status=404)


def _object(body: bytes) -> Dict[str, Any]:
    # The one hardened path, as for every JSON from outside: linear time, integers and nesting bounded.
    try:
        data = loads_untrusted(body.decode("utf-8"), what="the body") if body.strip() else None
    except (DocumentError, UnicodeDecodeError) as exc:
        reason = exc if isinstance(exc, DocumentError) else "the body is not UTF-8"
        raise EmulatorFault(_UNDEFINED, f"the body is not JSON ({reason})") from None
    if not isinstance(data, dict):
        raise EmulatorFault(_UNDEFINED, "the body must be a JSON object")
    return data


def _only(data: Mapping[str, Any], allowed: AbstractSet[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise EmulatorFault(_UNDEFINED, f"unknown field(s) {', '.join(unknown)}")


def _string(data: Mapping[str, Any], key: str) -> Optional[str]:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise EmulatorFault(_UNDEFINED, f"{key} must be a string")
    return value


def _devices(data: Mapping[str, Any]) -> List[Tuple[DeviceIdentifier, ...]]:
    items = data.get("devices")
    if not isinstance(items, list) or not items:
        raise EmulatorFault(_UNDEFINED, "devices must be a non-empty array")
    out = []
    for item in items:
        ids = item.get("deviceIds") if isinstance(item, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, dict) for i in ids):
            raise EmulatorFault(_UNDEFINED, "each device needs deviceIds: [{id, kind}]")
        try:
            out.append(tuple(DeviceIdentifier(pair.get("kind"), pair.get("id")) for pair in ids))
        except InputError as exc:
            raise EmulatorFault(exc.code, exc.fault_text()) from None
    return out


def _custom_fields(data: Mapping[str, Any]) -> List[CustomField]:
    items = data.get("customFields", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) and set(i) == {"key", "value"} for i in items):
        raise EmulatorFault(_UNDEFINED, "customFields must be [{key, value}]")
    try:
        return [CustomField(item["key"], item["value"]) for item in items]
    except InputError as exc:
        raise EmulatorFault(exc.code, exc.fault_text()) from None
