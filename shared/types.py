"""The field types every service shares: national agency codes and Vietnamese text.

Agency codes are a national standard, not one service's rule: the registry stores them, the
exchange addresses documents with them, the gateway carries them in tokens. One definition here.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Strict

from shared.text import storable

# The one definition of an agency code. Two forms travel between agencies, and a code of either
# form is stored and accepted wherever a code is (documents, deliveries, history, the registry):
# QCVN 102:2016 form NNN.NN.NN.Lnn, 13 characters, e.g. 000.00.00.H41
CODE_PATTERN = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
# Decision 20/2020 form (amended 2025): level 1 first (a letter and two digits), then numeric levels
# of one to three digits separated by dots, e.g. H41, H52.101.114; at most 35 characters in all.
NEW_CODE_PATTERN = re.compile(r"^[A-Z]\d{2}(\.\d{1,3})*$")
CODE_MAX_LENGTH = 35
"""The longest agency code of either form: the width of every column that stores one."""


def valid_code(value: str) -> str:
    """Return an agency code in the QCVN 102 form, upper-cased; raise ValueError otherwise."""
    value = value.strip().upper()
    if not CODE_PATTERN.fullmatch(value):
        raise ValueError("must be a national agency code in the QCVN 102 form NNN.NN.NN.Lnn, e.g. 000.00.00.H41")
    return value


def valid_new_code(value: str) -> str:
    """Return an agency code in the Decision 20/2020 form; raise ValueError otherwise."""
    value = value.strip().upper()
    if len(value) > CODE_MAX_LENGTH or not NEW_CODE_PATTERN.fullmatch(value):
        raise ValueError(
            f"must be a code in the Decision 20/2020 form (at most {CODE_MAX_LENGTH} characters), "
            "e.g. H41 or H52.101.114"
        )
    return value


def valid_any_code(value: str) -> str:
    """Return an agency code in either form; raise ValueError otherwise."""
    value = value.strip().upper()
    if not is_agency_code(value):
        raise ValueError(
            "must be an agency code: NNN.NN.NN.Lnn (QCVN 102, e.g. 000.00.00.H41) or the Decision 20/2020 form "
            f"(e.g. H41 or H52.101.114, at most {CODE_MAX_LENGTH} characters)"
        )
    return value


def is_agency_code(value: str) -> bool:
    """Whether ``value`` (already stripped and upper-cased) is an agency code of either form."""
    return bool(CODE_PATTERN.fullmatch(value) or (len(value) <= CODE_MAX_LENGTH and NEW_CODE_PATTERN.fullmatch(value)))


def _nfc_first(value: object) -> object:
    """Normalise before the length limits are checked (an NFD text is longer than its NFC form)."""
    return storable(value) if isinstance(value, str) else value


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


QcvnAgencyCode = Annotated[str, AfterValidator(valid_code)]
"""An agency code in the QCVN 102 form only (where only that form may stand)."""
NewAgencyCode = Annotated[str, AfterValidator(valid_new_code)]
"""An agency code in the Decision 20/2020 form."""
AnyAgencyCode = Annotated[str, AfterValidator(valid_any_code)]
"""An agency code of either form: QCVN 102 or Decision 20/2020."""
AgencyCode = AnyAgencyCode
"""An agency's code wherever one is stored or accepted: either form (see :data:`AnyAgencyCode`)."""
VietnameseText = Annotated[str, BeforeValidator(_nfc_first), AfterValidator(_not_blank)]
"""Text stored as given, in NFC, stripped, not blank, without NUL or lone surrogates."""
OptionalText = Annotated[str, BeforeValidator(_nfc_first)]
"""Text in NFC, stripped, possibly empty."""
AgencyStatus = Literal["active", "suspended", "retired"]
StrictInt = Annotated[int, Strict()]
"""An integer given as a JSON number: ``"2"``, ``true`` and ``2.0`` are refused, not coerced."""
StrictBool = Annotated[bool, Strict()]
"""A boolean given as JSON ``true``/``false``: ``"yes"``, ``1`` and ``"true"`` are refused."""

EARLIEST_DATE = dt.date(1945, 1, 1)
"""The earliest promulgation date accepted: the state's first documents (2 September 1945) and a margin."""


def _sane_promulgation_date(value: dt.date) -> dt.date:
    latest = dt.date.today() + dt.timedelta(days=366)
    if not EARLIEST_DATE <= value <= latest:
        raise ValueError(f"must be between {EARLIEST_DATE.isoformat()} and {latest.isoformat()} (a year from today)")
    return value


def _sane_due_date(value: dt.date) -> dt.date:
    latest = dt.date.today() + dt.timedelta(days=5 * 366)
    if not EARLIEST_DATE <= value <= latest:
        raise ValueError(
            f"must be between {EARLIEST_DATE.isoformat()} and {latest.isoformat()} (five years from today)"
        )
    return value


PromulgationDate = Annotated[dt.date, AfterValidator(_sane_promulgation_date)]
"""A document's promulgation date: from 1945-01-01 to a year from today."""
DueDate = Annotated[dt.date, AfterValidator(_sane_due_date)]
"""A date something is due: from 1945-01-01 to five years from today."""
