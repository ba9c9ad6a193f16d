"""The HTTP/1.1 protocol the servers run (uvicorn with httptools), with the request line and headers
bounded while they are read.

httptools (llhttp) has no limit of its own on the size of a request's headers, and uvicorn's
``h11_max_incomplete_event_size`` applies to h11 only: without this class a 32 MiB header is read
into memory whole and handed to the app. :class:`BoundedHttpToolsProtocol` counts the bytes of each
request's head as they arrive and, past ``LIENTHONG_LIMITS__HEADER_MAX_BYTES``, answers
``431 headers_too_large`` (problem+json) and closes the connection; other connections are not
affected. The apps check the same limit again (shared/limits.py) when served another way.

Over TLS, the protocol also gives each request the ASGI TLS extension
(``scope["extensions"]["tls"]``: the client certificate the TLS handshake verified, as PEM in
``client_cert_chain``, its subject, the TLS version), which uvicorn does not: the gateway identifies
agency systems by their certificate with it (mutual TLS, gateway/mtls.py).
"""

from __future__ import annotations

import functools
import json
import ssl
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.errors import PROBLEM_JSON, HeadersTooLargeError

PROTOCOL = "shared.httpserver:BoundedHttpToolsProtocol"
"""What to give uvicorn as ``http=`` (an import path: it reaches worker processes too)."""


@functools.cache
def _configured_limit() -> int:
    from shared.config import CoreSettings

    return CoreSettings().limits.header_max_bytes


class _HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request whose head is larger than the limit."""

    max_header_bytes: int | None = None  # None: from the settings (LIENTHONG_LIMITS__HEADER_MAX_BYTES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit = self.max_header_bytes or _configured_limit()
        self._in_head = True  # a new connection starts with a request's head
        self._began = False  # a request began during the data being parsed
        self._raw_head_bytes = 0  # bytes received while a head was incomplete (the parser buffers them)
        self._parsed_head_bytes = 0  # the request line and headers, as parsed
        self._head_refused = False
        self._tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:  # the TLS handshake is over by now
        super().connection_made(transport)
        self._tls = _tls_extension(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._began = True
        self._raw_head_bytes = 0
        self._parsed_head_bytes = 0
        if self._tls is not None:
            self.scope["extensions"] = {"tls": cast("dict[object, object]", self._tls)}

    def data_received(self, data: bytes) -> None:
        if self._head_refused:
            return
        self._began = False
        super().data_received(data)
        # When the head is still incomplete after this data, the parser holds all of it (or, when a
        # request began inside this data, its head's start: not counted, at most one read's worth).
        if self._in_head and not self._head_refused and not self._began:
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self._limit:
                self._refuse_head()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._parsed_head_bytes += size
        if self._parsed_head_bytes > self._limit:
            self._head_refused = True
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._head_refused:
            self._head_refused = False
            self._refuse_head()
            return
        super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._head_refused = True
        error = HeadersTooLargeError(
            f"The request line and headers are limited to {self._limit} bytes", max_bytes=self._limit
        )
        body = json.dumps(error.to_problem()).encode()
        self.logger.warning("request refused: its headers are larger than %d bytes", self._limit)
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + b"content-type: "
            + PROBLEM_JSON.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection (None: not TLS). Only the peer's own certificate is
    known (the Python ssl module of this version gives no verified chain)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name = None
    if der:
        from cryptography import x509

        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }
