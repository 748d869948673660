"""Statements compiled once per dialect and run on the driver's own cursor.

For the two paths where SQLAlchemy's per-execution work (execution contexts, parameter
processing, result metadata) cost more than the database's: the caller card, read while the
phone rings, and the call logger, whose thread takes the interpreter from the event loop that
sends the pops. Column types' conversions are applied here, both ways, as SQLAlchemy would; a
driver error goes through SQLAlchemy's handling, so a dropped connection is invalidated, and
`crm_core.db.read` can retry it or the call logger can tell it from an event at fault.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

# Expanded SQL kept per statement (see Prepared.bind): one per list length, and the call logger's
# lists are at most its MAX_BATCH (200) long; a few hundred short strings per statement.
MAX_LAYOUTS = 256

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Layout:
    """A statement's SQL for one length of each of its lists, and where each driver parameter
    comes from: (list name, index), a value's name (index None), or a constant the statement
    fixes (name None: a literal, a column's default), each with its type's conversion."""

    sql: str
    keys: tuple[str, ...] | None  # the driver's parameter names; None: positional
    sources: tuple[tuple[str | None, int | None, Any, _Processor], ...]

    @classmethod
    def of(cls, compiled: Any, values: dict[str, Any], defaults: dict[str, Any]) -> _Layout:
        expanded = compiled.construct_expanded_state(values)
        origin = {key: (name, i) for name, keys in expanded.parameter_expansion.items() for i, key in enumerate(keys)}
        keys = tuple(expanded.positiontup or expanded.parameters)
        sources: list[tuple[str | None, int | None, Any, _Processor]] = []
        for key in keys:
            name, i = origin.get(key, (key, None))
            kind = compiled.binds[name].type.dialect_impl(compiled.dialect)
            process = kind.bind_processor(compiled.dialect)
            if name in values:
                sources.append((name, i, None, process))
            else:
                fixed = defaults.get(key, expanded.parameters[key])
                sources.append((None, None, fixed if process is None else process(fixed), None))
        return cls(expanded.statement, None if expanded.positiontup else keys, tuple(sources))

    def parameters(self, values: dict[str, Any]) -> Any:
        found = []
        for name, i, fixed, process in self.sources:
            value = fixed if name is None else values[name] if i is None else values[name][i]
            found.append(value if process is None else process(value))
        return found if self.keys is None else dict(zip(self.keys, found, strict=True))


@dataclass
class Prepared:
    """A statement compiled for one dialect, with its rows' shape and its columns' types (a
    SELECT) or its columns' scalar defaults (an INSERT); the result conversions are looked up
    once, from the first result's column descriptions, and the SQL is expanded once per length
    of its lists (SQLAlchemy's expansion for each card took four times what SQLite took to run
    the statement)."""

    compiled: Any
    row: type | None
    types: tuple[Any, ...]
    defaults: dict[str, Any]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None
    layouts: dict[tuple[tuple[str, int], ...], _Layout] = field(default_factory=dict)  # by names, list lengths

    def bind(self, values: dict[str, Any]) -> tuple[str, Any]:
        layout = self._layout(values)
        return layout.sql, layout.parameters(values)

    def bind_many(self, rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        """One SQL for rows with the same names and no lists (an executemany)."""
        layout = self._layout(rows[0])
        return layout.sql, [layout.parameters(values) for values in rows]

    def _layout(self, values: dict[str, Any]) -> _Layout:
        shape = tuple((name, len(value) if isinstance(value, list) else -1) for name, value in values.items())
        layout = self.layouts.get(shape)
        if layout is None:
            layout = _Layout.of(self.compiled, values, self.defaults)
            if len(self.layouts) < MAX_LAYOUTS:
                self.layouts[shape] = layout
        return layout

    def convert(self, rows: list[tuple[Any, ...]], description: Sequence[Any]) -> list[Any]:
        assert self.row is not None, "not a SELECT"
        if self.converters is None:
            dialect = self.compiled.dialect
            found = ((i, kind.result_processor(dialect, column[1]))
                     for i, (kind, column) in enumerate(zip(self.types, description, strict=True)))
            self.converters = tuple((i, convert) for i, convert in found if convert is not None)
        make, converters = self.row._make, self.converters
        if not converters:
            return [make(row) for row in rows]
        out = []
        for row in rows:
            values = list(row)
            for i, convert in converters:
                values[i] = convert(values[i])
            out.append(make(values))
        return out


@lru_cache(maxsize=128)
def prepared(statement: Any, dialect: Any, column_keys: tuple[str, ...] = ()) -> Prepared:
    """`statement` compiled for `dialect`; an INSERT for the columns `column_keys` names (the
    others take their defaults, which must be plain values: no function is called per row)."""
    if statement.is_dml:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))
        defaults = {}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            if not column.default.is_scalar:
                raise ValueError(f"{column}: a default computed per row cannot be prepared")
            defaults[column.key] = column.default.arg
        return Prepared(compiled, None, (), defaults)
    columns = list(statement.selected_columns)
    row = namedtuple("Row", [column.key for column in columns], rename=True)  # type: ignore[misc]
    types = tuple(column.type.dialect_impl(dialect) for column in columns)
    return Prepared(statement.compile(dialect=dialect), row, types, {})


def fetch(connection: Connection, statements: list[tuple[Any, dict[str, Any]]]) -> list[list[Any]]:
    """The rows of each SELECT in `statements`, as named tuples; on PostgreSQL in one psycopg
    pipeline, one round trip for all (at 10 M clients the round trips were most of a card)."""
    dialect = connection.dialect
    raw = connection.connection.driver_connection
    ready = [(prepared(statement, dialect), values) for statement, values in statements]
    sql, params = "", None
    try:
        if dialect.name == "postgresql":
            cursors = []
            with raw.pipeline():
                for query, values in ready:
                    sql, params = query.bind(values)
                    cursors.append(raw.cursor().execute(sql, params))
            fetched = [(cursor.fetchall(), cursor.description) for cursor in cursors]
        else:
            fetched = []
            for query, values in ready:
                sql, params = query.bind(values)
                cursor = raw.cursor()
                fetched.append((cursor.execute(sql, params).fetchall(), cursor.description))
    except dialect.loaded_dbapi.Error as exc:
        connection._handle_dbapi_exception(exc, sql, params, None, None)
    return [query.convert(*result) for (query, _), result in zip(ready, fetched, strict=True)]


def execute_many(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """An INSERT, UPDATE or DELETE once per row of `rows` (all with the same names), in the
    connection's transaction."""
    if not rows:
        return
    query = prepared(statement, connection.dialect, tuple(rows[0]))
    sql, params = query.bind_many(rows)
    try:
        connection.connection.driver_connection.cursor().executemany(sql, params)
    except connection.dialect.loaded_dbapi.Error as exc:
        connection._handle_dbapi_exception(exc, sql, params, None, None)
