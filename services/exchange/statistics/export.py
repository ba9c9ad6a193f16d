"""The statistics tables as files: CSV (UTF-8 with a byte-order mark, so that Excel reads the
Vietnamese names right) and XLSX (openpyxl), with the JSON rows' columns in the same order."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from fastapi.responses import Response
from openpyxl import Workbook

from services.exchange.statistics.schemas import ExportFormat, Selection, TableName

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def rows_of(table: Selection) -> tuple[list[str], list[list[Any]]]:
    """The header and the rows of a table (datetimes as ISO 8601 text)."""
    rows: list[Any] = getattr(table, "rows", [])
    model = type(rows[0]) if rows else None
    if model is None:
        annotation = type(table).model_fields["rows"].annotation
        model = getattr(annotation, "__args__", (None,))[0]
    header = list(model.model_fields) if model is not None else []
    body = [[_cell(getattr(row, name)) for name in header] for row in rows]
    return header, body


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def to_csv(table: Selection) -> bytes:
    header, body = rows_of(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in body)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(name: TableName, table: Selection) -> bytes:
    header, body = rows_of(table)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=name.value)
    sheet.append(header)
    for row in body:
        sheet.append(row)
    info = workbook.create_sheet(title="selection")
    info.append(["from", table.from_month])
    info.append(["to", table.to_month])
    info.append(["root", table.root or ""])
    info.append(["level", table.level or ""])
    info.append(["as_of", table.as_of.isoformat() if table.as_of else ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render(name: TableName, table: Selection, format: ExportFormat) -> Response:
    """The file response of a table."""
    filename = f"lienthong-{name.value}-{table.from_month}-{table.to_month}.{format.value}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format is ExportFormat.XLSX:
        return Response(to_xlsx(name, table), media_type=XLSX, headers=headers)
    return Response(to_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
