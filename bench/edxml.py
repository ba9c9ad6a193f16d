"""edXML packets, in one process (the library alone: no database, no HTTP):

packets read per second from a signed packet of about 1 MB (a 750 KB PDF attachment, base64),
through :func:`services.exchange.edxml.read_signed_packet`: the safe parse, the XML-DSig check of
the whole packet (exclusive c14n, ECDSA P-256, SHA-256) and the typed packet with its attachment
decoded; ceiling, same run: lxml's own parse and signxml's own ``XMLVerifier.verify`` of the same
bytes with the same certificate (what any Python implementation must at least spend). CPU ms per
packet (process time) for both. The difference is mostly the attachment's base64 decoding
(about 2 ms per MB here), which the ceiling does not do.

Then stored: the same kind of packet (each its own number) posted to ``POST /v1/documents`` as
``application/xml`` of the embedded system (``lienthong dev``, one process, SQLite): parsed,
verified, its attachment in the blob store and its rows committed before the ``202``, one packet
at a time; packets per second and the server's CPU ms per packet.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import httpx
from lxml import etree
from signxml.verifier import XMLVerifier

from bench.common import bench_pdf
from services.exchange.edxml import (
    Attachment,
    Code,
    DocumentType,
    MessageHeader,
    Organization,
    Packet,
    PromulgationInfo,
    read_signed_packet,
    sign_packet,
    write_packet,
)
from tests.signature.pki import Pki, build_pki

ROUNDS = 100
STORED = 40  # packets posted to the embedded system, one at a time, after 5 to warm up
ATTACHMENT_BYTES = 750 * 1024  # base64 makes it ~1 MB of packet


def one_megabyte_packet(sender: str = "000.00.01.H41", recipient: str = "000.00.00.G22", number: int = 24) -> Packet:
    """A packet of one 750 KB PDF (its bulk random bytes: nothing compresses or repeats)."""
    return Packet(
        message_header=MessageHeader(
            from_=Organization(organ_id=sender, organ_name="Sở Tài chính tỉnh Nghệ An"),
            to=[Organization(organ_id=recipient, organ_name="Văn phòng Chính phủ")],
            document_id=f"{sender},2026/11/20,{number}/KH-STC",
            code=Code(code_number=str(number), code_notation="KH-STC"),
            promulgation_info=PromulgationInfo(place="Bình Phước", promulgation_date=dt.date(2026, 11, 20)),
            document_type=DocumentType(type_name="Kế hoạch"),
            subject="Kế hoạch chuyển đổi số năm 2027",
        ),
        attachments=[
            Attachment(
                content_id="1",
                attachment_name="ke-hoach.pdf",
                content_type="application/pdf",
                data=bench_pdf(ATTACHMENT_BYTES),  # well-formed: the archive reads its text as an agency's
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
    print(f"storing {STORED} packets through POST /v1/documents of the embedded system, one at a time …", flush=True)
    stored_rate, stored_cpu = await stored(pki)
    print(
        f"signed 1 MB packets parsed + verified + stored per second (embedded, one at a time): {stored_rate:,.1f};"
        f" the server's CPU {stored_cpu:.1f} ms per packet    ceiling: lxml parse + signxml verify alone"
        f" {raw_rate:,.1f} per second, {raw_cpu:.1f} ms"
    )


async def stored(pki: Pki) -> tuple[float, float]:
    """Signed 1 MB packets posted to the embedded system one at a time: packets per second (POST to
    202: parsed, verified, stored and committed) and the server's CPU ms per packet."""
    from bench.common import tree_cpu_ms
    from bench.send import RECIPIENT, SENDER, _agencies, embedded_server

    packets = [
        sign_packet(
            write_packet(one_megabyte_packet(SENDER, RECIPIENT, n)), key=pki.seal.key, certificate=pki.seal.cert
        )
        for n in range(1, STORED + 6)
    ]
    async with embedded_server() as (url, pid):  # signature policy off: the packet's own signature is checked
        tokens = await _agencies(url)
        headers = {"Authorization": f"Bearer {tokens[SENDER]}", "Content-Type": "application/xml"}
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for data in packets[:5]:
                (await http.post("/v1/documents", content=data, headers=headers)).raise_for_status()
            cpu_before, started = tree_cpu_ms(pid), time.perf_counter()
            for data in packets[5:]:
                response = await http.post("/v1/documents", content=data, headers=headers)
                assert response.status_code == 202, response.text
            seconds = time.perf_counter() - started
            cpu = tree_cpu_ms(pid) - cpu_before
    return STORED / seconds, cpu / STORED
