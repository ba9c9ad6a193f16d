"""What the API shows of a document's signatures."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["valid", "invalid", "indeterminate", "unsigned", "pending"]


class SignatureVerdictRead(BaseModel):
    verdict: Verdict = Field(
        description="the main file's signatures, verified by the signature service against the trust store:"
        " pending until a document sent under the 'flag' policy is verified (seconds)"
    )
    reasons: list[str] = Field(default_factory=list, description="why, in plain words (empty when valid)")
    checked_at: dt.datetime | None


class SignatureCheckQueued(BaseModel):
    document_id: uuid.UUID
    signature: SignatureVerdictRead
