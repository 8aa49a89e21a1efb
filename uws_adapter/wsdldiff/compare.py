"""Our WSDL against a service's: each difference with a verdict for our client.

**breaking**: what our client sends or reads would not be understood — an operation we use that is
missing or bound otherwise (SOAPAction, SOAP version, style), an element or member in another
namespace or under another name, members in another order (WCF's DataContract serializer skips a
member that comes out of order, so an optional filter would silently drop out of a selection), a
member they require that we do not always send, a member we send that they do not declare, another
simple type or fewer occurrences for something we send, or a response member we read that is gone.

**benign**: what we never send or do not read (members, operations, headers they declare in
addition, optional ones), what does not travel (type names, documentation), and anything that
makes them more lenient than we are (optional where we require, nillable where we are not).

The rules are here and only here; the text of each verdict says what it means for the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Set

from uws_adapter.wsdldiff.contract import ANY, Contract, Member, Operation, Schema, documentation_of

__all__ = ["BENIGN", "BREAKING", "Difference", "compare_contracts"]

BREAKING, BENIGN = "breaking", "benign"
#: Members of our request types that our client never sends: the ChangeDeviceState actions it has
#: no model for (uws_adapter.model.actions has Restore and Suspend only). What they declare for
#: these cannot break us.
NEVER_SENT = frozenset({"Activate", "Deactivate", "Reconnect"})
#: Recursion guard for self-referencing types.
_MAX_DEPTH = 24


@dataclass(frozen=True)
class Difference:
    """One difference: where (service, operation, path of members), what kind, both sides, and
    the verdict with why."""

    verdict: str
    kind: str
    where: str
    ours: str
    theirs: str
    why: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        sides = f"ours {self.ours}, theirs {self.theirs}"
        return f"{self.verdict.upper():8} {self.kind:14} {self.where}: {sides} -- {self.why}"


def _occurs(value: Optional[int]) -> str:
    return "unbounded" if value is None else str(value)


class _Comparison:
    def __init__(self, ours: Schema, theirs: Schema) -> None:
        self.ours = ours
        self.theirs = theirs
        self.found: List[Difference] = []

    def add(self, verdict: str, kind: str, where: str, ours: str, theirs: str, why: str) -> None:
        self.found.append(Difference(verdict, kind, where, ours, theirs, why))

    # Operations ---------------------------------------------------------------------------------

    def operation(self, where: str, ours: Operation, theirs: Operation) -> None:
        if (ours.soap_action or "") != (theirs.soap_action or ""):
            self.add(BREAKING, "soap-action", where, repr(ours.soap_action), repr(theirs.soap_action),
                     "the service dispatches on it: every call would be refused (ActionNotSupported)")  # fmt: skip
        if theirs.soap_version != ours.soap_version:
            self.add(BREAKING, "soap-version", where, ours.soap_version, theirs.soap_version,
                     "we send SOAP 1.1 envelopes only")  # fmt: skip
        if (theirs.style, theirs.use) != (ours.style, ours.use):
            self.add(BREAKING, "binding", where, f"{ours.style}/{ours.use}", f"{theirs.style}/{theirs.use}",
                     "we send document/literal wrapped messages only")  # fmt: skip
        self._documentation(where, ours.documentation, theirs.documentation)
        self._bodies(f"{where} input", ours.input_body, theirs.input_body, sent=True)
        self._headers(f"{where} input header", ours.input_headers, theirs.input_headers)
        self._bodies(f"{where} output", ours.output_body, theirs.output_body, sent=False)

    def _bodies(self, where: str, ours: Sequence[str], theirs: Sequence[str], *, sent: bool) -> None:
        for name in ours:
            match = _by_name(name, theirs)
            if match is None:
                shown = ", ".join(theirs) or "nothing"
                if sent:
                    self.add(BREAKING, "element", where, name, shown, "the body element we send is not theirs")
                    continue
                # We read answers by local name; a wrapper of another name only matters through
                # the members we read, compared below when there is one to compare with.
                match = theirs[0] if len(theirs) == 1 else None
                if match is None:
                    self.add(BREAKING, "element", where, name, shown, "the answer we read is not described")
                    continue
            if match != name:
                self._renamed(where, name, match, sent=sent)
            mine, other = self.ours.global_member(name), self.theirs.global_member(match)
            if mine is not None and other is None:
                self.add(BREAKING if sent else BENIGN, "element", where, name, "no declaration",
                         "they do not declare the element" + ("" if sent else "; a test call tells"))  # fmt: skip
            elif mine is not None and other is not None:
                self.member(f"{where} {mine.local}", mine, other, sent=sent, depth=0)
        for name in theirs:
            if _by_name(name, ours) is None and sent:
                self.add(BREAKING, "element", where, "nothing", name, "they expect a body element we do not send")

    def _headers(self, where: str, ours: Sequence[str], theirs: Sequence[str]) -> None:
        for name in ours:
            match = _by_name(name, theirs)
            if match is None:
                self.add(BENIGN, "header", where, name, "not declared",
                         "they do not describe the header; WCF reads undeclared headers in code, so a one-device "
                         "request tells whether the session token is taken")  # fmt: skip
            elif match != name:
                self._renamed(where, name, match, sent=True)
        for name in theirs:
            if _by_name(name, ours) is None:
                self.add(BENIGN, "header", where, "not sent", name,
                         "a header we never send; WCF headers are optional unless the service checks them")  # fmt: skip

    def _renamed(self, where: str, ours: str, theirs: str, *, sent: bool) -> None:
        kind = "namespace" if _local(ours) == _local(theirs) else "name"
        if sent:
            self.add(BREAKING, kind, where, ours, theirs, "what we send would not be recognised")
        else:
            self.add(BENIGN, kind, where, ours, theirs, "we read answers by local name")

    # Members ------------------------------------------------------------------------------------

    def member(self, where: str, ours: Member, theirs: Member, *, sent: bool, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        self._documentation(where, ours.documentation, theirs.documentation)
        mine, other = self.ours.complex_type(ours), self.theirs.complex_type(theirs)
        if ours.type and theirs.type and _local(ours.type) != _local(theirs.type) and mine is not None:
            self.add(BENIGN, "type-name", where, _local(ours.type), _local(theirs.type),
                     "type names do not travel; the members are compared")  # fmt: skip
        if (mine is None) != (other is None):
            kinds = ("simple", "complex") if mine is None else ("complex", "simple")
            self.add(BREAKING if sent else BENIGN, "type", where, kinds[0], kinds[1],
                     "the content of the element differs in kind")  # fmt: skip
            return
        if mine is None or other is None:
            a, b = self.ours.simple_base(ours.type), self.theirs.simple_base(theirs.type)
            if _local(a) != _local(b):
                self.add(BREAKING if sent else BENIGN, "type", where, _local(a), _local(b),
                         "what we send may not be valid for them" if sent else "we read it as text")  # fmt: skip
            return
        self._documentation(f"{where} (type)", documentation_of(mine), documentation_of(other))
        kind_ours, members_ours = self.ours.members(mine)
        kind_theirs, members_theirs = self.theirs.members(other)
        if sent and kind_theirs != kind_ours and kind_theirs != "all":
            self.add(BREAKING, "compositor", where, kind_ours, kind_theirs, "the members are grouped otherwise")
        if sent:
            self._sent_members(where, members_ours, members_theirs, ordered=kind_theirs == "sequence", depth=depth)
        else:
            self._read_members(where, members_ours, members_theirs, depth=depth)

    def _sent_members(self, where: str, ours: List[Member], theirs: List[Member], *, ordered: bool,
                      depth: int) -> None:  # fmt: skip
        positions = {m.name: i for i, m in enumerate(theirs) if m.name != ANY}
        by_local = {m.local: m for m in reversed(theirs)}  # the first of each local name
        matched: Set[str] = set()
        last: Optional[Member] = None  # the sent member before, as theirs orders them
        for mine in ours:
            if mine.name == ANY:
                continue
            path = f"{where}/{mine.local}"
            other = next((m for m in theirs if m.name == mine.name), None)
            if other is None and mine.local in by_local:
                other = by_local[mine.local]
                self.add(BREAKING if mine.local not in NEVER_SENT else BENIGN, "namespace", path, mine.namespace,
                         other.namespace, "the member would be taken for an unknown element")  # fmt: skip
            if other is None:
                if mine.local in NEVER_SENT:
                    continue
                if any(m.name == ANY for m in theirs):
                    continue  # their wildcard takes it
                self.add(BREAKING, "missing", path, "sent", "not declared",
                         "a member we send that they do not declare: refused (DeserializationFailed)")  # fmt: skip
                continue
            matched.add(other.name)
            if mine.local in NEVER_SENT:
                continue
            if ordered and last is not None and positions.get(other.name, -1) < positions.get(last.name, -1):
                self.add(BREAKING, "order", path, f"after {last.local}", f"before {last.local}",
                         "WCF skips a member that comes out of order: it would be dropped or refused")  # fmt: skip
            last = other if last is None or positions.get(other.name, -1) > positions.get(last.name, -1) else last
            if other.min_occurs > mine.min_occurs:
                self.add(BREAKING, "required", path, f"minOccurs {mine.min_occurs}", f"minOccurs {other.min_occurs}",
                         "they require a member we send only for some requests")  # fmt: skip
            elif other.min_occurs < mine.min_occurs:
                self.add(BENIGN, "optional", path, f"minOccurs {mine.min_occurs}", f"minOccurs {other.min_occurs}",
                         "they accept its absence; we always send it")  # fmt: skip
            mine_max, other_max = mine.max_occurs, other.max_occurs
            if other_max is not None and (mine_max is None or mine_max > other_max):
                self.add(BREAKING, "max-occurs", path, _occurs(mine_max), _occurs(other_max),
                         "we may send more of it than they take")  # fmt: skip
            elif mine_max != other_max:
                self.add(BENIGN, "max-occurs", path, _occurs(mine_max), _occurs(other_max), "they take more")
            if mine.nillable != other.nillable:
                self.add(BENIGN, "nillable", path, str(mine.nillable).lower(), str(other.nillable).lower(),
                         "we leave out an absent member, never send it nil")  # fmt: skip
            self.member(path, mine, other, sent=True, depth=depth + 1)
        for other in theirs:
            if other.name == ANY or other.name in matched or other.local in {m.local for m in ours}:
                continue
            path = f"{where}/{other.local}"
            if other.min_occurs > 0:
                self.add(BREAKING, "required", path, "not sent", f"minOccurs {other.min_occurs}",
                         "they require a member we never send")  # fmt: skip
            else:
                self.add(BENIGN, "extra", path, "not sent", "optional", "a member we never send")

    def _read_members(self, where: str, ours: List[Member], theirs: List[Member], *, depth: int) -> None:
        by_local = {m.local: m for m in theirs if m.name != ANY}
        for mine in ours:
            if mine.name == ANY:
                continue
            path = f"{where}/{mine.local}"
            other = by_local.get(mine.local)
            if other is None:
                if mine.min_occurs > 0:
                    self.add(BREAKING, "missing", path, "read", "not declared", "an answer member we read is gone")
                continue
            if other.name != mine.name:
                self.add(BENIGN, "namespace", path, mine.namespace, other.namespace, "we read answers by local name")
            if mine.min_occurs > 0 and other.min_occurs == 0:
                self.add(BENIGN, "optional", path, f"minOccurs {mine.min_occurs}", "minOccurs 0",
                         "an answer without it is reported as an error naming it")  # fmt: skip
            self.member(path, mine, other, sent=False, depth=depth + 1)
        known = {m.local for m in ours}
        for other in theirs:
            if other.name != ANY and other.local not in known:
                self.add(
                    BENIGN, "extra", f"{where}/{other.local}", "not read", "declared", "an answer member we ignore"
                )

    def _documentation(self, where: str, ours: str, theirs: str) -> None:
        # Only where both sides document: a WCF WSDL carries none, which says nothing.
        if ours and theirs and ours != theirs:
            self.add(BENIGN, "documentation", where, _short(ours), _short(theirs), "documentation does not travel")


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _by_name(name: str, names: Sequence[str]) -> Optional[str]:
    if name in names:
        return name
    return next((other for other in names if _local(other) == _local(name)), None)


def compare_contracts(ours: Contract, theirs: Contract) -> List[Difference]:
    """Every difference between the services both describe (matched by name, else by the
    operations they share). :class:`.InputError` when they describe none of ours."""
    from uws_adapter.errors import InputError

    comparison = _Comparison(ours.schema, theirs.schema)
    pairs = []
    for service, operations in theirs.services.items():
        if service in ours.services:
            pairs.append((service, service))
            continue
        shared = [name for name, mine in ours.services.items() if set(mine) & set(operations)]
        if shared:
            pairs.append((shared[0], service))
    if not pairs:
        raise InputError(
            "SOURCE", "describes none of our services (" + ", ".join(sorted(ours.services)) + ")",
            "point SOURCE at CarrierService.svc?wsdl or SessionService.svc?wsdl",
        )  # fmt: skip
    for mine, other in pairs:
        our_ops, their_ops = ours.services[mine], theirs.services[other]
        for name, operation in our_ops.items():
            where = f"{mine}.{name}"
            if name not in their_ops:
                comparison.add(BREAKING, "operation", where, "used", "missing", "an operation we call is not offered")
                continue
            comparison.operation(where, operation, their_ops[name])
        for name in their_ops:
            if name not in our_ops:
                comparison.add(
                    BENIGN, "operation", f"{mine}.{name}", "not used", "offered", "an operation we never call"
                )
    return comparison.found
