"""A UWS SOAP client over requests: log in, send Restore/Suspend, get the RequestId.

The session, retry and batching rules are the ones every backend shares
(:class:`uws_adapter.provisioning.Provisioner`); this module speaks SOAP.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Tuple

import requests
from lxml import etree

from uws_adapter.errors import DocumentError, OutcomeUnknown, TransportError
from uws_adapter.model.actions import Action
from uws_adapter.model.selection import Selection
from uws_adapter.provisioning.base import BatchResult, Provisioner
from uws_adapter.provisioning.faults import make_fault, soap_fault
from uws_adapter.provisioning.transport import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_TIMEOUT,
    SentRequest,
    check_base_url,
    redact_xml,
)
from uws_adapter.store.interfaces import RequestLog
from uws_adapter.uws.envelope import SoapRequest, build_envelope, build_login, build_logout, check_soap_request
from uws_adapter.wire import UWS_BASE_URL
from uws_adapter.xmlsafe import parse_untrusted

__all__ = ["DEFAULT_TIMEOUT", "BatchResult", "UwsClient"]


class UwsClient(Provisioner):
    """UWS SessionService and CarrierService over HTTPS.

    ``session`` is an injectable :class:`requests.Session`; ``timeout`` is (connect, read) seconds
    and never None; ``deadline`` bounds each whole exchange (connect, send, complete answer) and
    ``max_answer_bytes`` the answer's size after decompression. With ``username`` and ``password``
    the client logs in on first use and once more when the token expires or is refused as invalid;
    with ``token`` alone it uses that token as it is.
    """

    api = "soap"

    def __init__(
        self,
        *,
        base_url: str = UWS_BASE_URL,
        username: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        session: Optional[requests.Session] = None,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        connect_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        store: Optional[RequestLog] = None,
    ) -> None:
        super().__init__(
            username=username, password=password, token=token, session=session, timeout=timeout,
            deadline=deadline, max_answer_bytes=max_answer_bytes, connect_retries=connect_retries, backoff=backoff,
            max_backoff=max_backoff, sleep=sleep, store=store,
        )  # fmt: skip
        self.base_url = check_base_url(base_url, "base_url").rstrip("/")

    def logout(self) -> None:
        """SessionService LogOut, then forget the token."""
        if self._token is None:
            return
        token, self._token = self._token, None
        self._post(build_logout(token, base_url=self.base_url), "LogOut", may_resend=True)

    def _check(self, action: Action, selection: Selection) -> None:
        check_soap_request(action, selection)

    def _login(self, username: str, password: str) -> str:
        root = self._post(build_login(username, password, base_url=self.base_url), "LogIn", may_resend=True)
        token = _find_text(root, "SessionToken")
        if not token:
            raise TransportError("LogIn answered without a SessionToken")
        return token

    def _change(self, action: Action, selection: Selection, token: str) -> str:
        envelope = build_envelope(action, selection, token=token, base_url=self.base_url)
        root = self._post(envelope, "ChangeDeviceState", may_resend=False, action=action, selection=selection)
        request_id = _find_text(root, "RequestId")
        if not request_id:
            raise TransportError("ChangeDeviceState answered without a RequestId")
        return request_id

    def _post(
        self, soap: SoapRequest, operation: str, *, may_resend: bool, action: Optional[Action] = None,
        selection: Optional[Selection] = None,
    ) -> etree._Element:  # fmt: skip
        def describe() -> SentRequest:  # what an OutcomeUnknown shows: no password, no token
            return SentRequest(
                "POST", soap.url, operation, redact_xml(soap.body), soap.headers,
                action=action.element if action is not None else None, selection=selection,
            )  # fmt: skip

        response = self._http.send(
            "POST", soap.url, request=describe, headers=soap.headers, data=soap.body, login=operation == "LogIn"
        )
        status = response.status_code
        root: Optional[etree._Element] = None
        unreadable = ""
        try:
            root = parse_untrusted(response.content, what=f"HTTP {status} response")
        except DocumentError as exc:  # an HTML error page, an empty body, a proxy's text
            unreadable = str(exc)
        if root is not None:
            fault = soap_fault(root)
            if fault is not None:
                raise make_fault(fault[0], fault[1], http_status=status)
            if 200 <= status < 300:
                return root
        # Name what came instead of a SOAP answer (an HTML error page, a proxy's text): its status
        # and content type; the XML parser's complaint only when it claimed to be XML.
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()[:100] or "no content type"
        detail = f"HTTP {status} {kind}, not a SOAP answer"
        if root is None and "xml" in kind.lower():
            detail += f" ({unreadable})"
        if operation == "LogIn":  # nothing was provisioned, and a login may be repeated
            raise TransportError(f"{detail}; logging in failed: log in again", http_status=status)
        if status >= 500 or (200 <= status < 300 and not may_resend):
            raise OutcomeUnknown(
                f"{detail}; the request may have been carried out: check its callbacks before sending it again",
                request=describe(),
                http_status=status,
            )
        raise TransportError(detail, http_status=status)


def _find_text(root: etree._Element, local_name: str) -> Optional[str]:
    # Response namespaces are read tolerantly: the documented response misspells the contract
    # namespace (no "/" after 2004/07), so the element is found by its local name.
    for element in root.iter(f"{{*}}{local_name}"):
        text = (element.text or "").strip()
        if text:
            return text
    return None
