"""Signature verification, in the production topology (each service its own process, PostgreSQL,
RabbitMQ), with a test PKI made here (EC P-256) in the trust store:

1. verifications per second of distinct signed 1 MB PDFs (cold: no cached result) through the
   gateway, 8 concurrent clients, the signature service's pool sized to the machine; the file as the
   request body, then as a multipart part;
2. the same PDF again and again (cached: file hash and trust-store version known);
ceiling, same run: pyHanko's own verification of the same PDFs (``async_validate_pdf_signature``
with the same trust roots and CRL, no HTTP), on a process pool of all the cores.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor

import httpx

from bench.common import cpu_ms, production_topology, server_cpu_ms, tree_cpu_ms
from bench.common import token as get_token
from services.demo.pdf import make_pdf
from tests.signature.pki import build_pki, sign_pdf

CONCURRENCY = 8
DOCUMENTS = 64
CACHED = 400


def one_megabyte_pdf(n: int) -> bytes:
    """An unsigned PDF of about 1 MB: a page of text, and a long content stream of its own."""
    lines = [f"Ke hoach so {n}/KH-UBND"] + [f"Dong {i:06d} noi dung van ban hanh chinh dai" for i in range(22_000)]
    return make_pdf(lines)


def _raw_verify(data: bytes, roots: list[bytes], intermediates: list[bytes], crls: list[bytes]) -> bool:
    """pyHanko alone: read the PDF, validate each signature against the same trust material."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from services.signature.verification.engine import KEY_USAGE

    async def run() -> bool:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        ok = True
        for signature in reader.embedded_signatures:
            context = ValidationContext(
                trust_roots=[asn1_x509.Certificate.load(r) for r in roots],
                other_certs=[asn1_x509.Certificate.load(i) for i in intermediates],
                crls=crls,
            )
            status = await async_validate_pdf_signature(
                signature, signer_validation_context=context, key_usage_settings=KEY_USAGE
            )
            ok = ok and status.bottom_line
        return ok

    return asyncio.run(run())


async def _verify_many(base_url: str, token: str, documents: list[bytes], *, multipart: bool = False) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for document in documents:
            queue.put_nowait(document)

        async def worker() -> None:
            while not queue.empty():
                document = queue.get_nowait()
                if multipart:
                    files = {"file": ("van-ban.pdf", document, "application/pdf")}
                    response = await http.post("/v1/signatures/verify", files=files)
                else:  # the file as the body
                    pdf = {"Content-Type": "application/pdf"}
                    response = await http.post("/v1/signatures/verify", content=document, headers=pdf)
                if response.status_code != 200 or response.json()["verdict"] != "valid":
                    raise RuntimeError(f"verification failed: {response.status_code} {response.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(documents) / (time.perf_counter() - started)


def _raw_rate(documents: list[bytes], roots: list[bytes], intermediates: list[bytes], crls: list[bytes]) -> float:
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_raw_verify, documents[:cores], *([x] * cores for x in (roots, intermediates, crls))))  # warm
        started = time.perf_counter()
        results = list(pool.map(_raw_verify, documents, *([x] * len(documents) for x in (roots, intermediates, crls))))
        rate = len(documents) / (time.perf_counter() - started)
    if not all(results):
        raise RuntimeError("pyHanko found a signature invalid")
    return rate


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    found = {name: cpu_ms(pid) for name, pid in pids.items() if name != "signature"}
    found["signature (service)"] = cpu_ms(pids["signature"])
    found["signature pool"] = tree_cpu_ms(pids["signature"]) - found["signature (service)"]
    found["postgres"] = server_cpu_ms("postgres")
    return found


async def main() -> None:
    pki = build_pki()
    print(f"signing {DOCUMENTS} PDFs of about 1 MB …", flush=True)
    unsigned = one_megabyte_pdf(1)
    # each signature differs (time, ECDSA nonce): distinct files, no cached result
    # pyHanko's signer runs its own event loop: in a thread
    documents = await asyncio.to_thread(
        lambda: [sign_pdf(unsigned, pki.seal, [pki.intermediate]) for _ in range(DOCUMENTS)]
    )
    print(f"PDF size: {len(documents[0]) / 1e6:.2f} MB", flush=True)
    roots, intermediates, crls = [pki.root.der], [pki.intermediate.der], [pki.crl]
    async with production_topology() as running:
        gateway = running.topology.url("gateway")
        async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
            admin = {"Authorization": f"Bearer {await get_token(http, 'admin', 'bench')}"}
            for kind, der in (("root", roots[0]), ("intermediate", intermediates[0])):
                body = {"kind": kind, "certificate": base64.b64encode(der).decode()}
                (
                    await http.post("/v1/signatures/trust-store/certificates", json=body, headers=admin)
                ).raise_for_status()
            body = {"crl": base64.b64encode(crls[0]).decode()}
            (await http.post("/v1/signatures/trust-store/crls", json=body, headers=admin)).raise_for_status()
            token = await get_token(http, "admin", "bench")
        await _verify_many(gateway, token, documents[:4])  # warm-up: the pool starts
        pids = {name: running.topology.processes[name].pid for name in ("gateway", "signature")}
        pids["bench"] = os.getpid()
        half = 4 + (len(documents) - 4) // 2
        before = _cpu(pids)
        cold = await _verify_many(gateway, token, documents[4:half])
        after = _cpu(pids)
        cold_multipart = await _verify_many(gateway, token, documents[half:], multipart=True)
        cached = await _verify_many(gateway, token, [documents[0]] * CACHED)
    raw = _raw_rate(documents[4:], roots, intermediates, crls)
    count = half - 4
    spent = ", ".join(f"{name} {(after[name] - before[name]) / count:.1f}" for name in after)
    print(f"CPU ms per cold verification (the file as the body): {spent}")
    print(
        f"verifications/s of a signed 1 MB PDF through the gateway ({CONCURRENCY} concurrent): cold {cold:,.1f}"
        f" ({cold / raw:.0%} of the ceiling), cold multipart {cold_multipart:,.1f}, cached {cached:,.1f}"
        f"    ceiling: pyHanko alone on {os.cpu_count()} cores {raw:,.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
