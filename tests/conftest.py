"""Shared fixtures and helpers for the uws-adapter tests."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import pytest
from lxml import etree

DATA = Path(__file__).parent / "data"
SHARED_DOCS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "thingspace-docs"

Shape = Tuple[str, str, List["Shape"]]


def parse_trusted(data: Union[bytes, str]) -> etree._Element:
    """Parse test fixtures and our own output (never hostile input) without DTDs or network."""
    raw = data.encode() if isinstance(data, str) else data
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    return etree.fromstring(raw, parser)


def shape(element: etree._Element) -> Shape:
    """Namespace-qualified names, text and child order: what must match, whatever the prefixes."""
    return (element.tag, (element.text or "").strip(), [shape(child) for child in element])


@pytest.fixture(scope="session")
def doc_request() -> bytes:
    return (DATA / "doc-restore-request.xml").read_bytes()
