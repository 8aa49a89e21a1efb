"""The bundled XSDs as validators, with lxml (libxml2) and with xmlschema, for whole SOAP messages.

Both stacks load the same files offline: the request schemas (the v2 operations and their data
contracts) or the callback schema, each beside our SOAP 1.1 envelope schema.
"""

from __future__ import annotations

import functools
from typing import Any

from lxml import etree

from uws_adapter.soap.resources import resource_dir
from uws_adapter.wire import NS_SOAP_ENV, NS_V2

REQUEST_XSD = "uws-v2.xsd"
CALLBACK_XSD = "uws-callback.xsd"
ENVELOPE_XSD = "soap-envelope.xsd"


def _bundle(xsd: str) -> str:
    # A schema document that only imports: the envelope schema and the one for its contents.
    return (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="{NS_SOAP_ENV}" schemaLocation="{ENVELOPE_XSD}"/>'
        f'<xs:import namespace="{NS_V2}" schemaLocation="{xsd}"/>'
        "</xs:schema>"
    )


@functools.cache
def lxml_schema(xsd: str = REQUEST_XSD) -> etree.XMLSchema:
    """An lxml validator for SOAP messages whose contents ``xsd`` describes."""
    root = resource_dir()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.fromstring(_bundle(xsd).encode(), parser, base_url=str(root / "bundle.xsd"))
    return etree.XMLSchema(document)


@functools.cache
def xmlschema_schema(xsd: str = REQUEST_XSD) -> Any:
    """The same validator built by xmlschema (offline: only files in the bundled folder)."""
    import xmlschema  # only the validators need it; keep it off the import path of the builder

    root = resource_dir()
    return xmlschema.XMLSchema10(_bundle(xsd), base_url=str(root), allow="sandbox", defuse="always")
