"""Bulk import and export endpoints: a whole agency tree in one CSV or JSON file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.registry.dependencies import AdminDep, RegistryConfigDep, TransferServiceDep
from services.registry.transfer.schemas import ImportReport, TransferFormat
from shared.errors import PayloadTooLargeError

router = APIRouter(tags=["agencies"])


async def read_file(request: Request, *, limit: int) -> bytes:
    """Return the request body; 413 as soon as it is longer than ``limit`` bytes."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLargeError(f"Import files are limited to {limit} bytes; split the file")
    return bytes(raw)


@router.post("/v1/agencies/import", response_model=ImportReport)
async def import_agencies(
    request: Request,
    transfer: TransferServiceDep,
    config: RegistryConfigDep,
    _admin: AdminDep,
    format: Annotated[TransferFormat, Query(description="csv or json")] = "csv",
    dry_run: bool = False,
) -> ImportReport:
    """Import a whole agency tree (body: the CSV or JSON file). Everything is validated before
    anything is written; re-importing creates nothing twice and reports what changed."""
    raw = await read_file(request, limit=config.max_import_bytes)
    transfer.batch_size = config.import_batch_size
    return await transfer.import_file(raw, format, dry_run=dry_run)


@router.get(
    "/v1/agencies/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}, "description": "The file, as `format` asks"}},
)
async def export_agencies(
    transfer: TransferServiceDep, _admin: AdminDep, format: Annotated[TransferFormat, Query()] = "csv"
) -> Response:
    """Export every agency, parents before children, in the import format (plus status, successor)."""
    body = await transfer.export_file(format)
    media = "application/json" if format == "json" else "text/csv; charset=utf-8"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="agencies.{format}"'}
    )
