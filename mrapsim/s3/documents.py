"""Request bodies that are XML documents (CompleteMultipartUpload, Delete, CreateBucketConfiguration):
parsed with the standard library, namespaces stripped, DTDs refused, errors as MalformedXML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

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
    `root` document. DTDs are refused outright (no entity expansion from request bodies)."""
    if len(body) > MAX_REQUEST_DOCUMENT or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise malformed_xml()
    try:
        element = ET.fromstring(body)
    except ET.ParseError:
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
