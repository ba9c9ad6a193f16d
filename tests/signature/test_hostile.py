"""Hostile input gets a 4xx problem+json, never a 500 and never a stall; the pool keeps the event
loop free, gives up a verification that overruns, and leaves no process behind."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.signature.verification.engine import Job, TrustMaterial
from services.signature.verification.pool import VerifierPool
from tests.conftest import running_system
from tests.helpers import Api, assert_problem
from tests.signature.conftest import Samples, verify
from tests.signature.pki import Pki, encrypt_pdf


async def test_garbage_truncated_encrypted_and_unsigned_files_are_refused(signature_api: Api, samples: Samples) -> None:
    encrypted = encrypt_pdf(samples.person, "mat-khau")
    cases = [
        (b"hello, this is not a document", "file_unreadable"),
        (samples.person[: len(samples.person) // 2], "document_unreadable"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 4, "document_unreadable"),
        (encrypted, "document_encrypted"),
        (samples.unsigned, "signature_not_found"),
        (b"<a><b></a>", "document_unreadable"),
        (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">]><l>&a;</l>', "signature_not_found"),
        (b"\x30\x82\x01\x00garbage", "signature_unreadable"),
        (b"-----BEGIN PKCS7-----\nbm90IGEgc2lnbmF0dXJl\n-----END PKCS7-----\n", "signature_unreadable"),
    ]
    for data, code in cases:
        assert_problem(await verify(signature_api, data), 422, code)
    assert_problem(await verify(signature_api, b""), 400, "upload_invalid")
    admin = await signature_api.admin()
    no_type = await signature_api.http.post("/v1/signatures/verify", content=samples.person, headers=admin)
    assert_problem(no_type, 400, "upload_invalid")
    odd_type = {**admin, "Content-Type": "image/png"}
    assert_problem(
        await signature_api.http.post("/v1/signatures/verify", content=b"png", headers=odd_type),
        415,
        "unsupported_media_type",
    )
    raw = await signature_api.http.post(
        "/v1/signatures/verify", content=samples.person, headers={**admin, "Content-Type": "application/pdf"}
    )
    assert raw.status_code == 200 and raw.json()["verdict"] == "valid"  # the file as the body
    raw_garbage = await signature_api.http.post(
        "/v1/signatures/verify", content=b"garbage", headers={**admin, "Content-Type": "application/pdf"}
    )
    assert_problem(raw_garbage, 422, "file_unreadable")


async def test_a_file_over_the_limit_is_413(tmp_path: Path, samples: Samples) -> None:
    async with running_system(tmp_path / "var", signature={"verify_workers": 1, "max_upload_bytes": 4096}) as api:
        assert_problem(await verify(api, samples.person), 413, "payload_too_large")
        assert_problem(await verify(api, b"x" * 100, signed=b"y" * 5000), 413, "payload_too_large")
        raw = {**(await api.admin()), "Content-Type": "application/pdf"}
        response = await api.http.post("/v1/signatures/verify", content=samples.person, headers=raw)
        assert_problem(response, 413, "payload_too_large")

        async def chunked() -> AsyncIterator[bytes]:  # no declared length: refused while reading
            for _ in range(10):
                yield b"%" * 1000

        response = await api.http.post("/v1/signatures/verify", content=chunked(), headers=raw)
        assert_problem(response, 413, "payload_too_large")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _gone(pids: list[int], seconds: float) -> bool:
    """Wait until none of ``pids`` runs (the forkserver reaps its children a moment later)."""
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_the_event_loop_answers_while_verifying_and_no_process_is_left(tmp_path: Path, samples: Samples) -> None:
    async with running_system(tmp_path / "var", signature={"verify_workers": 2}) as api:
        uploads = [verify(api, samples.person + b"\n%" + str(n).encode()) for n in range(6)]
        started = time.monotonic()
        verifications = asyncio.gather(*uploads)
        health = await api.http.get("/health")
        assert health.status_code == 200 and time.monotonic() - started < 5
        assert all(r.status_code == 200 for r in await verifications)
        pool = api.service_runtime("signature").pool  # type: ignore[attr-defined]
        workers = list(pool._executor._processes)
        assert workers and all(_alive(pid) for pid in workers)
    assert await asyncio.to_thread(_gone, workers, 5.0)


async def test_a_verification_that_overruns_is_given_up_and_its_worker_killed(samples: Samples) -> None:
    pool = VerifierPool(1, timeout_seconds=0.001)
    trust = TrustMaterial(version=1, roots=(), intermediates=(), crls=())
    try:
        with pytest.raises(Exception) as raised:
            await pool.verify(Job(samples.person_then_seal * 50, None, trust))
        assert getattr(raised.value, "code", None) == "verification_timeout"
        pool.timeout_seconds = 30
        outcome = await pool.verify(Job(samples.person, None, trust))  # a fresh pool answers
        assert outcome.findings[0].verdict == "indeterminate"
    finally:
        await pool.shutdown()


def test_mangled_signed_files_are_judged_or_refused_never_crash(samples: Samples, pki: Pki) -> None:
    """Bytes flipped, cut or repeated anywhere in signed PDFs, CMS and XML: the engine answers with
    findings or a refusal code the API knows, in the worker, without raising."""
    from services.signature.errors import REFUSALS
    from services.signature.verification.engine import run_job

    trust = TrustMaterial(version=1, roots=(pki.root.der,), intermediates=(pki.intermediate.der,), crls=(pki.crl,))
    randomness = random.Random(30)
    originals = [samples.person_then_seal, samples.edxml_default, samples.edxml_ds, samples.cms]
    for _ in range(120):
        data = bytearray(randomness.choice(originals))
        operation = randomness.randrange(3)
        at = randomness.randrange(len(data))
        if operation == 0:
            data[at] ^= 1 << randomness.randrange(8)
        elif operation == 1:
            del data[at : at + randomness.randrange(1, 200)]
        else:
            data[at:at] = data[at : at + randomness.randrange(1, 200)]
        signed = samples.cms_content if data[:1] == b"\x30" else None
        outcome = run_job(Job(bytes(data), signed, trust))
        assert outcome.refused is None or outcome.refused[0] in REFUSALS, outcome.refused
        assert outcome.refused is not None or all(
            f.verdict in ("valid", "invalid", "indeterminate") for f in outcome.findings
        )
