"""``uws-adapter wsdl diff``: the WSDL we ship against the one a service publishes.

:func:`diff` reads SOURCE (a ``.svc?wsdl`` URL with its WCF-style imports, a ``?singleWsdl``, or a
file) hardened (:mod:`.sources`), reads both sides with lxml alone (:mod:`.contract`: no SOAP
stack, so it runs on the core install), and lists each difference with its verdict for our
client (:mod:`.compare`, where the rules are).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from uws_adapter.wsdldiff.compare import BENIGN, BREAKING, Difference, compare_contracts
from uws_adapter.wsdldiff.contract import Contract, contract_of
from uws_adapter.wsdldiff.sources import Documents, read_documents

__all__ = ["BENIGN", "BREAKING", "Difference", "WsdlDiff", "diff", "diff_documents", "our_contract"]


@dataclass(frozen=True)
class WsdlDiff:
    """The differences found, and which services were compared."""

    source: str
    services: Tuple[str, ...]
    differences: Tuple[Difference, ...]

    @property
    def breaking(self) -> bool:
        return any(d.verdict == BREAKING for d in self.differences)

    def counts(self) -> Dict[str, int]:
        return {verdict: sum(d.verdict == verdict for d in self.differences) for verdict in (BREAKING, BENIGN)}

    def to_dict(self) -> Dict[str, Any]:
        return {
            "source": self.source, "services": list(self.services), "breaking": self.breaking,
            "counts": self.counts(), "differences": [d.to_dict() for d in self.differences],
        }  # fmt: skip

    def lines(self) -> List[str]:
        shown = [d.line() for d in sorted(self.differences, key=lambda d: d.verdict != BREAKING)]
        counts = self.counts()
        verdict = "breaking for our client" if self.breaking else "nothing breaking for our client"
        summary = (f"{', '.join(self.services)}: {counts[BREAKING]} breaking, {counts[BENIGN]} benign "
                   f"difference(s): {verdict}")  # fmt: skip
        return [*shown, summary]


@functools.lru_cache(maxsize=1)
def our_contract() -> Contract:
    """The contract of the WSDL we ship (package data, read like any other source)."""
    from uws_adapter.soap.resources import WSDL_FILE, resource_dir  # lxml's side: no zeep

    root = resource_dir() / WSDL_FILE
    return contract_of(read_documents(str(root)))


def diff_documents(documents: Documents) -> WsdlDiff:
    theirs = contract_of(documents)
    found = compare_contracts(our_contract(), theirs)
    services = tuple(name for name in theirs.services if name in our_contract().services) or tuple(theirs.services)
    return WsdlDiff(documents.source, services, tuple(found))


def diff(source: str, **limits: Any) -> WsdlDiff:
    """Compare the WSDL at ``source`` with ours. ``limits``: see :func:`.read_documents`."""
    return diff_documents(read_documents(source, **limits))
