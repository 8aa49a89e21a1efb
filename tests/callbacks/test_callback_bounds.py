"""What an unauthenticated callback can cost (issue 17 item 3): nodes bounded (elements and
comments for XML, values for JSON) and counted at the cost of the C parse, prolog runs bounded, and
the credentials readable before anything else is walked."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from uws_adapter.callbacks.rest_json import parse_rest_callback, rest_callback_object, rest_credentials
from uws_adapter.callbacks.uws_xml import callback_credentials, callback_element, parse_callback
from uws_adapter.errors import CallbackParseError, DocumentError
from uws_adapter.model.callbacks import MAX_CALLBACK_NODES
from uws_adapter.xmlsafe import MAX_PROLOG_NODES, parse_untrusted

NS = 'xmlns="http://nphase.com/unifiedwebservice/v2"'


def callback_with(inner: str, head: str = "") -> bytes:
    return (
        f"{head}<CallbackRequest {NS}><Username>u</Username><Password>p</Password><RequestId>r</RequestId>"
        f"{inner}</CallbackRequest>"
    ).encode()


def test_a_callback_of_a_thousand_devices_is_within_the_bound() -> None:
    devices = "".join(f"<Device><Kind>IMEI</Kind><Identifier>{n}</Identifier></Device>" for n in range(1000))
    assert len(parse_callback(callback_with(devices)).devices) == 1000


@pytest.mark.parametrize("unit", ["<a/>", "<a></a>", "<!--c-->", "<a><!--c--></a>"])
def test_one_node_over_the_bound_is_refused_naming_it(unit: str) -> None:
    nodes_per_unit = unit.count("<") - unit.count("</")
    fits = callback_with(unit * ((MAX_CALLBACK_NODES - 4) // nodes_per_unit))
    parse_callback(fits)
    over = callback_with(unit * (MAX_CALLBACK_NODES // nodes_per_unit + 1))
    with pytest.raises(CallbackParseError, match=f"more than {MAX_CALLBACK_NODES:,} elements and comments"):
        parse_callback(over)


def test_the_count_stops_the_parse_at_the_bound() -> None:
    # Past the bound comes what is not XML at all: the refusal names the bound, so the parse never
    # got there (a whole parse would have said "not well-formed").
    body = callback_with("<a/>" * (MAX_CALLBACK_NODES * 3) + "<<<not xml")
    with pytest.raises(CallbackParseError, match="more than"):
        parse_callback(body)


def test_the_counted_parse_reads_the_same_tree_as_the_whole_parse() -> None:
    document = b"<?xml version='1.0'?><!--x--><?pi a?><r><?q?><a>t</a><!--c--><b x='1'/></r><?z?>"
    whole = parse_untrusted(document)
    counted = parse_untrusted(document, max_nodes=5)  # more "<" than 5: the counted parse
    assert etree.tostring(counted.getroottree()) == etree.tostring(whole.getroottree())
    with pytest.raises(DocumentError, match="more than 4 elements and comments"):
        parse_untrusted(document, max_nodes=4)


def test_processing_instructions_cost_no_node_but_the_prolog_is_bounded() -> None:
    parse_callback(callback_with("<?a?>" * (MAX_CALLBACK_NODES * 2)))
    parse_callback(callback_with("", head="<!--a-->" * MAX_PROLOG_NODES))
    for run in ("<!--a-->", "<?a?>"):
        with pytest.raises(CallbackParseError, match=f"more than {MAX_PROLOG_NODES} comments and processing"):
            parse_callback(callback_with("", head=run * (MAX_PROLOG_NODES + 1)))
    # Without a node bound (service answers), a prolog is read as before.
    parse_untrusted(b"<!--a-->" * 1000 + b"<r/>")


@pytest.mark.parametrize("lead", ["", "\ufeff", " \n", "<?xml version='1.0'?>"])
def test_only_what_stands_before_the_root_is_the_prolog(lead: str) -> None:
    # A document that opens with its root has no prolog: its comments and PIs, and a DOCTYPE
    # written in a comment, are inside the root and bounded as nodes, not as prolog.
    inside = "<!--a-->" * (MAX_PROLOG_NODES + 1) + "<?a?>" * (MAX_PROLOG_NODES + 1) + "<!-- <!DOCTYPE r> -->"
    assert parse_callback(lead.encode() + callback_with(inside)).request_id == "r"
    with pytest.raises(CallbackParseError, match=f"more than {MAX_PROLOG_NODES} comments and processing"):
        parse_callback(lead.encode() + callback_with("", head="<!--a-->" * (MAX_PROLOG_NODES + 1)))
    with pytest.raises(CallbackParseError, match="DOCTYPE is not allowed"):
        parse_callback(lead.encode() + callback_with("", head="<!DOCTYPE r>"))


def test_the_mend_hint_is_not_searched_for_in_a_flood() -> None:
    slashed = callback_with("<Data><Comment>x</Comment/></Data>")
    with pytest.raises(CallbackParseError, match="repair"):
        parse_callback(slashed)
    flood = callback_with("</a/>" + "<a/>" * (MAX_CALLBACK_NODES * 2))
    with pytest.raises(CallbackParseError) as refused:
        parse_callback(flood)
    assert "repair" not in str(refused.value)


def test_credentials_are_read_without_walking_the_rest() -> None:
    request, _ = callback_element(callback_with("<Data><Data><CallbackCount>x</CallbackCount></Data></Data>"))
    assert callback_credentials(request) == ("u", "p", "r")
    with pytest.raises(CallbackParseError, match="CallbackCount"):
        parse_callback(etree.tostring(request))
    document = rest_callback_object(b'{"username": "u", "password": "p", "requestId": "r", "callbackCount": "x"}')
    assert rest_credentials(document) == ("u", "p", "r")


def test_json_values_are_bounded() -> None:
    fits = {"requestId": "r", "deviceIds": [{"id": str(n), "kind": "imei"} for n in range(1000)]}
    assert len(parse_rest_callback(json.dumps(fits).encode()).devices) == 1000
    for flood in ([0] * MAX_CALLBACK_NODES, {str(n): 0 for n in range(MAX_CALLBACK_NODES + 1)}):
        body = json.dumps({"requestId": "r", "x": flood}).encode()
        with pytest.raises(CallbackParseError, match=f"more than {MAX_CALLBACK_NODES:,} JSON values"):
            parse_rest_callback(body)


def test_json_values_are_counted_before_the_decode() -> None:
    # Past the bound comes what is not JSON at all: the refusal names the bound, so the decode
    # never ran (decoding 1 MB of [] or 1 cost 100-300 ms of CPU before any credential was read).
    for unit in ("0", "[]", "{}", '{"a":1}', '"s"'):
        body = '{"requestId": "r", "x": [' + ",".join([unit] * (MAX_CALLBACK_NODES * 3)) + ", @@@ not json"
        with pytest.raises(CallbackParseError, match=f"more than {MAX_CALLBACK_NODES:,} JSON values"):
            parse_rest_callback(body.encode())


@pytest.mark.parametrize("unit", ["[]", "{}", "0", "[ ]", '"a,[{"'])
def test_the_count_before_the_decode_is_exact_at_the_bound(unit: str) -> None:
    # The values of a list of n units: n, plus what each unit holds (nothing here).
    fits = json.dumps({"requestId": "r", "x": []}).replace(
        "[]", "[" + ",".join([unit] * (MAX_CALLBACK_NODES - 2)) + "]"
    )
    parse_rest_callback(fits.encode())
    over = fits.replace("[", "[" + unit + ",", 1)
    with pytest.raises(CallbackParseError, match="more than"):
        parse_rest_callback(over.encode())


def test_commas_brackets_and_escaped_quotes_inside_strings_are_not_values() -> None:
    comment = ('a,[{,\\"],{' * (MAX_CALLBACK_NODES * 2)) + "\\\\"
    body = json.dumps({"requestId": "r", "status": "Success"})[:-1] + f', "comment": "{comment}"}}'
    assert parse_rest_callback(body.encode()).request_id == "r"


@pytest.mark.parametrize("key", ["password", "requestId", "username", "id"])
def test_a_key_twice_in_one_object_is_refused_as_xml_refuses_an_element_twice(key: str) -> None:
    # The last one won: {"password": "wrong", ..., "password": "right"} was accepted, and a proxy
    # or log reader that takes the first saw another password, RequestId or device.
    body = '{"username": "u", "password": "p", "requestId": "r", "deviceIds": [{"id": "1", "kind": "IMEI"}]}'
    where = body.index('"id"') if key == "id" else 1
    doubled = body[:where] + f'"{key}": "other", ' + body[where:]
    with pytest.raises(CallbackParseError, match=f"^callback: the key '{key}' appears twice in one object$"):
        rest_callback_object(doubled.encode())
    assert rest_credentials(rest_callback_object(body.encode())) == ("u", "p", "r")
