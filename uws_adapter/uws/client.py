"""A UWS SOAP client over requests: log in, send Restore/Suspend, get the RequestId.

The session, retry and batching rules are the ones every backend shares
(:class:`uws_adapter.provisioning.Provisioner`); this module speaks SOAP.
"""

from __future__ import annotations

from typing import Optional, TypeVar, Union

from lxml import etree

from uws_adapter.errors import DocumentError, TransportError, fault_for
from uws_adapter.model.actions import Action
from uws_adapter.model.selection import Selection
from uws_adapter.provisioning.base import BatchResult, Provisioner
from uws_adapter.provisioning.engine import Answer, Codec, NotUsable, Outgoing, Stakes
from uws_adapter.provisioning.faults import soap_fault
from uws_adapter.provisioning.options import DEFAULT_TIMEOUT
from uws_adapter.provisioning.sent import SentRequest, redact_xml
from uws_adapter.uws.envelope import SoapRequest, build_envelope, build_login, build_logout, check_soap_request
from uws_adapter.wire import UWS_BASE_URL
from uws_adapter.xmlsafe import parse_untrusted

__all__ = ["DEFAULT_TIMEOUT", "BatchResult", "SoapCodec", "UwsClient"]

T = TypeVar("T")


class SoapCodec:
    """Reads a SOAP answer: the envelope of a 2xx, its fault raised as the :class:`ServiceFault` its
    code means, or :class:`NotUsable` (an HTML error page, an empty body, a proxy's text)."""

    def read(self, answer: Answer) -> Union[etree._Element, NotUsable]:
        status = answer.status_code
        try:
            root = parse_untrusted(answer.content, what=f"HTTP {status} response")
        except DocumentError as exc:
            kind = answer.headers.get("Content-Type", "")
            # The XML parser's complaint only when it claimed to be XML.
            return NotUsable("not a SOAP answer" + (f" ({exc})" if "xml" in kind.lower() else ""))
        fault = soap_fault(root)
        if fault is not None:
            raise fault_for(fault[0], fault[1], http_status=status)
        if 200 <= status < 300:
            return root
        return NotUsable("not a SOAP answer")


_SOAP = SoapCodec()


class _RequestIdCodec:
    """Reads a ChangeDeviceState answer into its RequestId. An envelope without one is not usable,
    so the engine's outcome rule decides what it means (a 2xx: it may have been carried out)."""

    def read(self, answer: Answer) -> Union[str, NotUsable]:
        root = _SOAP.read(answer)
        if isinstance(root, NotUsable):
            return root
        return _find_text(root, "RequestId") or NotUsable("without a RequestId")


_REQUEST_ID = _RequestIdCodec()


class UwsClient(Provisioner):
    """UWS SessionService and CarrierService over HTTPS, at ``base_url`` (default: the carrier's).

    ``options`` (a :class:`~uws_adapter.provisioning.options.SendOptions`) bounds each call; the
    older keywords (``timeout=``, ``deadline=``, ...) are mapped onto it, ``session=`` and ``sleep=``
    are the engine's. With ``username`` and ``password`` the client logs in on first use and again
    when the token expires or is refused; with ``token`` alone it uses that token as it is. Use it
    as a context manager (or call :meth:`close`): a session it opened is logged out at the end.
    """

    api = "soap"
    default_url = UWS_BASE_URL

    def _logout(self, token: str) -> None:
        self._post(build_logout(token, base_url=self.base_url), "LogOut", Stakes.REPEATABLE, _SOAP)

    def _check(self, action: Action, selection: Selection) -> None:
        check_soap_request(action, selection)

    def _login(self, username: str, password: str) -> str:
        root = self._post(build_login(username, password, base_url=self.base_url), "LogIn", Stakes.LOGIN, _SOAP)
        token = _find_text(root, "SessionToken")
        if not token:
            raise TransportError("LogIn answered without a SessionToken")
        return token

    def _change(self, action: Action, selection: Selection, token: str) -> str:
        envelope = build_envelope(action, selection, token=token, base_url=self.base_url, checked=True)
        return self._post(envelope, "ChangeDeviceState", Stakes.ONCE, _REQUEST_ID, action=action, selection=selection)

    def _post(
        self, soap: SoapRequest, operation: str, stakes: Stakes, codec: Codec[T], *,
        action: Optional[Action] = None, selection: Optional[Selection] = None,
    ) -> T:  # fmt: skip
        def describe() -> SentRequest:  # what an OutcomeUnknown shows: no password, no token
            return SentRequest(
                "POST", soap.url, operation, redact_xml(soap.body), soap.headers,
                action=action.element if action is not None else None, selection=selection,
            )  # fmt: skip

        request = Outgoing(
            "POST", soap.url, operation, tuple(soap.headers.items()), soap.body, stakes=stakes, describe=describe
        )
        return self._http.call(request, codec)


def _find_text(root: etree._Element, local_name: str) -> Optional[str]:
    # Response namespaces are read tolerantly: the documented response misspells the contract
    # namespace (no "/" after 2004/07), so the element is found by its local name.
    for element in root.iter(f"{{*}}{local_name}"):
        text = (element.text or "").strip()
        if text:
            return text
    return None
