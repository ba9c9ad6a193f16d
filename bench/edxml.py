"""edXML packets, in one process (the library alone: no database, no HTTP):

packets read per second from a signed packet of about 1 MB (a 750 KB PDF attachment, base64),
through :func:`services.exchange.edxml.read_signed_packet`: the safe parse, the XML-DSig check of
the whole packet (exclusive c14n, ECDSA P-256, SHA-256) and the typed packet with its attachment
decoded; ceiling, same run: lxml's own parse and signxml's own ``XMLVerifier.verify`` of the same
bytes with the same certificate (what any Python implementation must at least spend). CPU ms per
packet (process time) for both. The difference is mostly the attachment's base64 decoding
(about 2 ms per MB here), which the ceiling does not do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from lxml import etree
from signxml.verifier import XMLVerifier

from services.exchange.edxml import (
    Attachment,
    Code,
    MessageHeader,
    Organization,
    Packet,
    read_signed_packet,
    sign_packet,
    write_packet,
)
from tests.signature.pki import build_pki

ROUNDS = 100
ATTACHMENT_BYTES = 750 * 1024  # base64 makes it ~1 MB of packet


def one_megabyte_packet() -> Packet:
    """A packet of one 750 KB attachment (random bytes: nothing compresses or repeats)."""
    return Packet(
        message_header=MessageHeader(
            from_=Organization(organ_id="000.00.01.H41", organ_name="Sở Tài chính tỉnh Nghệ An"),
            to=[Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ")],
            document_id="000.00.01.H41,2026/11/20,24/KH-STC",
            code=Code(code_number="24", code_notation="KH-STC"),
            subject="Kế hoạch chuyển đổi số năm 2027",
        ),
        attachments=[
            Attachment(
                content_id="1",
                attachment_name="ke-hoach.pdf",
                content_type="application/pdf",
                data=b"%PDF-1.7\n" + os.urandom(ATTACHMENT_BYTES),
            )
        ],
    )


def _rates(*works: Callable[[], object]) -> list[tuple[float, float]]:
    """Packets per second and CPU ms per packet of each work, run in turns (one warm-up each, then
    ROUNDS rounds of one of each): a machine busy with something else slows both alike."""
    wall = [0.0] * len(works)
    cpu = [0.0] * len(works)
    for work in works:
        work()
    for _ in range(ROUNDS):
        for index, work in enumerate(works):
            cpu_before, started = time.process_time(), time.perf_counter()
            work()
            wall[index] += time.perf_counter() - started
            cpu[index] += time.process_time() - cpu_before
    return [(ROUNDS / w, c * 1000 / ROUNDS) for w, c in zip(wall, cpu, strict=True)]


async def main() -> None:
    pki = build_pki()
    signed = sign_packet(write_packet(one_megabyte_packet()), key=pki.seal.key, certificate=pki.seal.cert)
    print(f"signed packet: {len(signed) / 1e6:.2f} MB; {ROUNDS} rounds each …", flush=True)

    def ours() -> None:
        packet, check = read_signed_packet(signed)
        assert packet.attachments[0].data[:4] == b"%PDF" and check.certificate == pki.seal.cert

    def ceiling() -> None:
        root = etree.fromstring(signed, etree.XMLParser(resolve_entities=False, no_network=True))
        XMLVerifier().verify(root, x509_cert=pki.seal.cert)

    (rate, cpu), (raw_rate, raw_cpu) = _rates(ours, ceiling)
    print(
        f"CPU ms per packet: read_signed_packet {cpu:.1f} ({1000 / cpu:,.1f} packets per CPU second),"
        f" lxml + signxml alone {raw_cpu:.1f} ({1000 / raw_cpu:,.1f})"
    )
    print(
        f"signed 1 MB packets parsed + verified per second (one core): {rate:,.1f} ({rate / raw_rate:.0%} of the"
        f" ceiling)    ceiling: lxml parse + signxml verify alone {raw_rate:,.1f}"
    )
