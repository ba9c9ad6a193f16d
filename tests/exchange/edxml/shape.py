"""The samples' shape (edxml-shape.xsd) as a check a test can hold a packet to."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

SHAPE = etree.XMLSchema(etree.parse(str(Path(__file__).with_name("edxml-shape.xsd"))))


def shape_errors(data: bytes) -> list[str]:
    """What in the packet breaks the samples' shape (empty: nothing)."""
    document = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
    SHAPE.validate(document)
    return [f"line {e.line}: {e.message}" for e in SHAPE.error_log]
