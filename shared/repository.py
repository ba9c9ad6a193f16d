"""The generic repository every service's repositories extend: all SQL lives in repositories.

A repository is built on the request's (or the message handler's) session and only flushes: the
edge commits. ``page`` is the one keyset pagination of the system (fetch one row more than asked
to know whether there is a next page; one cursor encoding, :mod:`shared.pagination`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, Table, tuple_
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.bulk import insert_rows
from shared.messaging import MessagingTables, record_event, record_events
from shared.pagination import decode_cursor, encode_cursor

ModelT = TypeVar("ModelT")
RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of rows and the cursor of the next (None on the last page)."""

    rows: Sequence[RowT]
    next_cursor: str | None


class Repository(Generic[ModelT]):
    """Get, add, flush and page through one model; subclasses add the queries of their capability."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id: uuid.UUID | str | int) -> ModelT | None:
        """Return the row with this primary key, or None."""
        row: ModelT | None = await self.session.get(self.model, id)
        return row

    async def add(self, row: ModelT) -> ModelT:
        """Add a row and flush, so that its defaults and constraints apply now."""
        self.session.add(row)
        await self.session.flush()
        return row

    async def add_all(self, rows: Sequence[Any]) -> None:
        """Add many rows with one flush (a broadcast's thousand deliveries)."""
        self.session.add_all(rows)
        await self.session.flush()

    async def insert_new(self, rows: Sequence[Any]) -> None:
        """Insert new rows of one model in one statement, outside the unit of work (the hot path); in
        a :func:`shared.bulk.deferred_inserts` block, with the block's other rows.

        The objects are completed first (their column defaults: ids, timestamps) so that the caller
        can read them, and stay transient: later changes to them are not saved."""
        if not rows:
            return
        table, columns = _insert_plan(type(rows[0]))
        values: list[dict[str, Any]] = []
        for row in rows:
            state = sa_inspect(row).dict
            for key, _column_key, default in columns:
                if key not in state and default is not None:
                    state[key] = default()  # a transient object's value: nothing tracks its history
            values.append({column_key: state[key] for key, column_key, _ in columns if key in state})
        await insert_rows(self.session, table, values)

    async def flush(self) -> None:
        """Send pending changes to the database (the edge commits)."""
        await self.session.flush()

    async def page(
        self,
        query: Select[*tuple[Any, ...]],
        *,
        keys: Sequence[InstrumentedAttribute[Any]],
        cursor: str | None,
        limit: int,
        descending: bool = False,
        scalars: bool = True,
    ) -> Page[Any]:
        """Return one page of ``query`` ordered by ``keys`` (unique together), after ``cursor``.

        ``scalars`` returns the first entity of each row (a ``select(Model)``); otherwise the rows."""
        if cursor is not None:
            after = decode_cursor(cursor, len(keys))
            bound = tuple_(*keys) if len(keys) > 1 else keys[0]
            value: Any = tuple_(*after) if len(keys) > 1 else after[0]
            query = query.where(bound < value if descending else bound > value)
        order = [key.desc() if descending else key.asc() for key in keys]
        query = query.order_by(None).order_by(*order).limit(limit + 1)
        result = await self.session.execute(query)
        rows: Sequence[Any] = result.scalars().all() if scalars else result.all()
        if len(rows) <= limit:
            return Page(rows=rows, next_cursor=None)
        last = rows[limit - 1]
        return Page(rows=rows[:limit], next_cursor=encode_cursor(*self._key_values(last, keys, scalars)))

    @staticmethod
    def _key_values(row: Any, keys: Sequence[InstrumentedAttribute[Any]], scalars: bool) -> list[Any]:
        if scalars:
            return [getattr(row, key.key) for key in keys]
        entities: dict[Any, Any] = {type(e): e for e in row if hasattr(e, "__table__")}
        return [getattr(entities[key.class_], key.key) for key in keys]

    async def record_events(
        self, tables: MessagingTables, events: Sequence[tuple[str, dict[str, Any], str | None]]
    ) -> list[str]:
        """Write events (type, data, ordering key) to the outbox in one statement, in this order."""
        return await record_events(self.session, tables, events)

    async def record_event(
        self, tables: MessagingTables, event_type: str, data: dict[str, Any], *, ordering_key: str | None = None
    ) -> str:
        """Write an event to the outbox in this transaction (published once the edge commits)."""
        return await record_event(self.session, tables, event_type, data, ordering_key=ordering_key)


_INSERT_PLANS: dict[type[Any], tuple[Table, list[tuple[str, str, Callable[[], Any] | None]]]] = {}


def transient(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """A new (transient) object of ``model`` holding ``values``, made without the mapped class's
    constructor: each keyword it takes is an instrumented assignment that records the attribute's
    history (five times the cost, for the send's rows: 4 against 22 µs a delivery). For the rows
    :meth:`Repository.insert_new` writes, which read the values and never the history. The keys are
    checked as the constructor checks them (``TypeError`` for one that is not a mapped attribute),
    once per model and set of keys."""
    keys = frozenset(values)
    known = _TRANSIENT_KEYS.setdefault(model, set())
    if keys not in known:
        mapper = sa_inspect(model)
        unknown = sorted(key for key in keys if key not in mapper.attrs)
        if unknown:
            raise TypeError(f"{unknown[0]!r} is an invalid keyword argument for {model.__name__}")
        _check_plain(model, mapper, keys)
        known.add(keys)
    row = model.__new__(model)
    model._sa_class_manager._new_state_if_none(row)  # type: ignore[attr-defined]
    row.__dict__.update(values)
    return row


_TRANSIENT_KEYS: dict[type[Any], set[frozenset[str]]] = {}


def _check_plain(model: type[Any], mapper: Any, keys: frozenset[str]) -> None:
    """Refuse what the constructor would do more than assign: a model with its own ``__init__``,
    ``@validates`` methods or a polymorphic identity, a key that is not a column (a relationship, a
    synonym): a change of the model fails here, loudly, rather than skipping them."""
    registry = getattr(model, "registry", None)
    plain_init = registry is not None and mapper.class_manager.original_init is registry.constructor
    if not plain_init or mapper.validators or mapper.polymorphic_identity is not None:
        raise TypeError(f"{model.__name__} has a constructor, validators or a polymorphic identity: build it with it")
    not_columns = sorted(key for key in keys if key not in mapper.column_attrs)
    if not_columns:
        raise TypeError(
            f"{not_columns[0]!r} of {model.__name__} is not a column: build the object with its constructor"
        )


def _insert_plan(model: type[Any]) -> tuple[Table, list[tuple[str, str, Callable[[], Any] | None]]]:
    """A model's table and, per column attribute, its key, its column's key and a maker of its
    Python-side default (read from the mapper once per model, not per row)."""
    plan = _INSERT_PLANS.get(model)
    if plan is None:
        mapper = sa_inspect(model)
        columns: list[tuple[str, str, Callable[[], Any] | None]] = []
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            default = column.default
            maker: Callable[[], Any] | None = None
            if default is not None and default.is_scalar:
                maker = functools.partial(_same, default.arg)
            elif default is not None and default.is_callable:
                maker = functools.partial(default.arg, None)
            columns.append((prop.key, column.key, maker))
        plan = _INSERT_PLANS[model] = (mapper.local_table, columns)
    return plan


def _same(value: Any) -> Any:
    return value
