"""The typed dependencies the archive's routes get their services through."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.archive.record.repository import ArchiveRecordRepository
from services.archive.record.service import RecordService
from shared.db import SessionDep


async def record_service(session: SessionDep) -> RecordService:
    return RecordService(ArchiveRecordRepository(session))


RecordServiceDep = Annotated[RecordService, Depends(record_service)]
