"""Statistics endpoints: aggregates of the delivery history for the statistics reader and the
registry admin (the province IT office), as JSON tables or CSV / XLSX files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from services.exchange.dependencies import StatisticsServiceDep
from services.exchange.statistics.export import render
from services.exchange.statistics.schemas import (
    AgencySort,
    AgencyTable,
    ExportFormat,
    LevelTable,
    MonthTable,
    SummaryTable,
    TableName,
)
from services.exchange.statistics.service import Filter
from shared.auth import Principal, Scope
from shared.roles import require_any_scope
from shared.types import CODE_MAX_LENGTH

router = APIRouter(prefix="/v1/statistics", tags=["statistics"])
ReaderDep = Annotated[Principal, require_any_scope(Scope.STATS, Scope.REGISTRY_ADMIN)]

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
FromQuery = Annotated[
    str | None,
    Query(alias="from", pattern=MONTH, description="first month, YYYY-MM (default: 11 months before `to`)"),
]
ToQuery = Annotated[
    str | None, Query(alias="to", pattern=MONTH, description="last month, YYYY-MM (default: this month)")
]
RootQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=CODE_MAX_LENGTH, description="an agency code: only it and the agencies below it"),
]
LevelQuery = Annotated[
    str | None, Query(min_length=1, max_length=40, description="an administrative level: only its agencies")
]


async def selection(
    from_month: FromQuery = None, to_month: ToQuery = None, root: RootQuery = None, level: LevelQuery = None
) -> Filter:
    """The months, subtree and level every table is asked for (the same query parameters on each)."""
    return Filter(from_month=from_month, to_month=to_month, root=root, level=level)


SelectionDep = Annotated[Filter, Depends(selection)]


@router.get("/summary", response_model=SummaryTable)
async def summary(
    statistics: StatisticsServiceDep,
    _reader: ReaderDep,
    chosen: SelectionDep,
) -> SummaryTable:
    """Return one row of figures over the selection: documents, deliveries, times to 01/03/06,
    overdue now, recalls, and the adoption figure (agencies active in the last 30 days)."""
    return await statistics.summary(chosen)


@router.get("/levels", response_model=LevelTable)
async def levels(
    statistics: StatisticsServiceDep,
    _reader: ReaderDep,
    chosen: SelectionDep,
) -> LevelTable:
    """Return one row per administrative level (by the level's rank): its figures and its adoption."""
    return await statistics.levels(chosen)


@router.get("/months", response_model=MonthTable)
async def months(
    statistics: StatisticsServiceDep,
    _reader: ReaderDep,
    chosen: SelectionDep,
) -> MonthTable:
    """Return one row per month of the range (months without traffic included, as zeros)."""
    return await statistics.months(chosen)


@router.get("/agencies", response_model=AgencyTable)
async def agencies(
    statistics: StatisticsServiceDep,
    _reader: ReaderDep,
    chosen: SelectionDep,
    sort: Annotated[AgencySort, Query(description="`slowest`: by p90 hours to 01, the slowest first")] = (
        AgencySort.CODE
    ),
    limit: Annotated[int | None, Query(ge=1, le=10000, description="at most this many rows")] = None,
) -> AgencyTable:
    """Return one row per agency of the selection (every agency of the directory's subtree, with
    or without traffic), sorted as asked."""
    return await statistics.agencies(chosen, sort=sort, limit=limit)


@router.get(
    "/{table}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The table as a file",
            "content": {
                "text/csv": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
            },
        }
    },
)
async def export(
    table: TableName,
    statistics: StatisticsServiceDep,
    _reader: ReaderDep,
    chosen: SelectionDep,
    format: Annotated[ExportFormat, Query(description="csv (UTF-8 with BOM) or xlsx")] = ExportFormat.CSV,
    sort: AgencySort = AgencySort.CODE,
) -> Response:
    """Return a table (summary, levels, months or agencies) as a CSV or XLSX file, with the same
    columns as its JSON rows, to paste into a report."""
    result = await statistics.table(table, chosen, sort=sort)
    return render(table, result, format)
