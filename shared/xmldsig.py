"""XML-DSig verification of a signature wherever it sits: the one verifier the signature service
and the edXML library share.

Stock signxml looks for ``ds:Signature`` only; the national edXML samples write ``<Signature>``
without a namespace of its own, so it and its children are in the edXML namespace. The signed bytes
are what they are: SignedInfo is canonicalised as found (never moved into ``ds``), and the
enveloped-signature transform removes that very element."""

from __future__ import annotations

from typing import Any

from lxml import etree
from signxml.exceptions import InvalidInput
from signxml.verifier import XMLVerifier

DSIG11_NS = "http://www.w3.org/2009/xmldsig11#"
EXC_C14N_PREFIX = "http://www.w3.org/2001/10/xml-exc-c14n#"

SIGNATURES = etree.XPath("//*[local-name()='Signature' and *[local-name()='SignedInfo']]")
"""Every XML-DSig ``Signature`` element of a document, whatever its namespace (document order)."""

_COPY = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class PlacedVerifier(XMLVerifier):
    """signxml's verifier for the signature at ``index`` of :data:`SIGNATURES`, in ``namespace``."""

    def __init__(self, index: int, namespace: str) -> None:
        super().__init__()
        self.index = index
        self.namespace = namespace

    def _get_signature(self, root: Any) -> Any:
        return SIGNATURES(root)[self.index]

    def _c14n(self, nodes: Any, algorithm: Any, inclusive_ns_prefixes: Any = None) -> bytes:
        """Inclusive c14n of an element that is not a document's root, done on a copy that is one.

        libxml2 (2.14, under lxml 6.1) writes a spurious ``xmlns=""`` on the grandchildren of such
        an element when the default namespace is declared above it: exactly SignedInfo's case in
        the samples' ``<Signature>`` (default edXML namespace) and in .NET's ``<Signature
        xmlns="…xmldsig#">``. The bytes a correct signer signed would then never match. A copy
        serialised alone carries every in-scope namespace on its root, which is what inclusive
        c14n asks for."""
        if not str(algorithm.value).startswith(EXC_C14N_PREFIX):
            items = nodes if isinstance(nodes, list) else [nodes]
            nodes = [
                etree.fromstring(etree.tostring(n, with_tail=False), _COPY) if n.getparent() is not None else n
                for n in items
            ]
        return bytes(super()._c14n(nodes, algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes))

    def _namespace(self, query: str) -> tuple[str, str]:
        prefix, _, local = query.rpartition(":")
        return (self.namespace if prefix in ("", "ds") else DSIG11_NS), local

    def _find(self, element: Any, query: str, require: bool = True, xpath: str = "") -> Any:
        namespace, local = self._namespace(query)
        result = element.find(f"{xpath}{{{namespace}}}{local}")
        if require and result is None:
            raise InvalidInput(f"Expected to find the XML element {local} in {element.tag}")
        return result

    def _findall(self, element: Any, query: str, xpath: str = "") -> Any:
        namespace, local = self._namespace(query)
        return element.findall(f"{xpath}{{{namespace}}}{local}")
