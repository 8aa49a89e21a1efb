"""Callback parsing: hardened lxml parse alone, our parse_callback, and zeep, in one process.

The document is the carrier's documented Restore callback (with its end-tag defect mended, since
zeep and the bare parse have no repair mode). zeep parses it with the types of our callback XSD:
element parse plus ``serialize_object``, what a zeep user would do to get plain data.
Prints microseconds per document and the ratios, for one document and a batch of 10,000.

    python benchmarks/callback_parse.py [--rounds N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import zeep
from lxml import etree
from zeep.helpers import serialize_object
from zeep.loader import parse_xml
from zeep.xsd import Schema

from uws_adapter import parse_callback
from uws_adapter.soap.schemas import CALLBACK_XSD
from uws_adapter.uws.bindings import _OfflineTransport, resource_dir
from uws_adapter.wire import NS_V2
from uws_adapter.xmlsafe import parse_untrusted

DOC = (Path(__file__).resolve().parents[1] / "tests" / "data" / "doc-restore-callback.xml").read_bytes()
DOC = DOC.replace(b"</MaxCallbackThreshold/>", b"</MaxCallbackThreshold>")


def zeep_parser() -> Callable[[bytes], Any]:
    root = resource_dir()
    transport = _OfflineTransport(root)
    settings = zeep.Settings(strict=False, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    path = root / CALLBACK_XSD
    schema = Schema(
        parse_xml(path.read_bytes(), transport, base_url=str(path), settings=settings),
        transport=transport,
        location=str(path),
        settings=settings,
    )
    element = schema.get_element(f"{{{NS_V2}}}CallbackRequest")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)

    def parse(data: bytes) -> Any:
        request = etree.fromstring(data, parser)[0][0]  # Envelope/Body/CallbackRequest
        return serialize_object(element.parse(request, schema))

    return parse


def best_per_doc(funcs: Dict[str, Callable[[bytes], Any]], docs: List[bytes], rounds: int) -> Dict[str, float]:
    """CPU seconds per document, the best of ``rounds``. CPU time leaves out what a shared machine
    spends elsewhere, and the methods take turns in every round so that drift hits all alike."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, func in funcs.items():
            start = time.process_time()
            for doc in docs:
                func(doc)
            best[name] = min(best[name], (time.process_time() - start) / len(docs))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per measurement; the best is kept")
    args = parser.parse_args()
    via_zeep = zeep_parser()
    assert parse_callback(DOC).request_id == via_zeep(DOC)["RequestId"]
    funcs = {"bare": parse_untrusted, "ours": parse_callback, "zeep": via_zeep}
    batch = [DOC.replace(b"2c90bd28", f"{n:08x}".encode()) for n in range(10_000)]
    cases = (("one document, 500 times a round", [DOC] * 500), ("a batch of 10,000 callbacks", batch))
    for label, docs in cases:
        rounds = args.rounds if len(docs) < 10_000 else max(3, args.rounds // 5)
        best = best_per_doc(funcs, docs, rounds)
        bare, ours, slow = best["bare"], best["ours"], best["zeep"]
        print(f"{label} (best of {rounds} rounds):")
        print(f"  hardened lxml parse   {bare * 1e6:8.1f} us")
        print(f"  parse_callback        {ours * 1e6:8.1f} us   {ours / bare:5.2f}x the bare parse (goal <= 2.5)")
        print(f"  zeep + serialize      {slow * 1e6:8.1f} us   ours is {slow / ours:5.1f}x faster (goal >= 8)")


if __name__ == "__main__":
    main()
