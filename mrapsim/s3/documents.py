"""Request bodies that are XML documents (CompleteMultipartUpload, Delete, CreateBucketConfiguration):
parsed by defusedxml over the standard library's expat, namespaces stripped, DTDs refused, errors
as MalformedXML.

The DTD is refused by the parser, not by a byte search: a document may be UTF-16 (or any encoding
expat reads), where `<!DOCTYPE` is not those bytes, and its entities would then expand (the
"billion laughs"). defusedxml stops at the DOCTYPE's start, before any entity is declared."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from mrapsim.s3.errors import S3Error

MAX_REQUEST_DOCUMENT = 4 * 1024 * 1024  # CompleteMultipartUpload with 10,000 parts is ~1.5 MB


def malformed_xml() -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def parse_request_document(body: bytes, root: str) -> ET.Element:
    """A request body's XML with namespaces stripped from tags; MalformedXML when it is not a
    `root` document. DTDs, entity declarations and external references are refused outright, in
    any encoding (no entity expansion from request bodies)."""
    if len(body) > MAX_REQUEST_DOCUMENT:
        raise malformed_xml()
    try:
        element: ET.Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, LookupError, ValueError):
        # LookupError: an XML declaration naming an encoding Python does not know ("UTF-9")
        raise malformed_xml() from None
    for node_ in element.iter():
        if isinstance(node_.tag, str) and "}" in node_.tag:
            node_.tag = node_.tag.split("}", 1)[1]
    if element.tag != root:
        raise malformed_xml()
    return element


def child_text(element: ET.Element, tag: str) -> str | None:
    found = element.find(tag)
    return None if found is None else (found.text or "")
