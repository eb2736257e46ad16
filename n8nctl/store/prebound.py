"""Intake's inserts, bound once per dialect: the rows of a group commit go to the driver's executemany.

SQLAlchemy's insert of a batch costs ~100 us of CPU per row in Python (its compiled-statement lookup,
parameter construction and type wrappers, docs/PERFORMANCE.md), on the thread that competes with
request handling for the GIL. Here the statement is rendered once per dialect and each value goes
through its column type's own bind processor (SQLAlchemy's public `TypeEngine` API), so the stored
values are exactly what SQLAlchemy would store; the driver then runs the statement per row in C.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from n8nctl.store.schema import Row

if TYPE_CHECKING:
    from sqlalchemy.sql.type_api import _BindProcessorType

    Processor = _BindProcessorType[Any] | None

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class PreboundInsert:
    """`INSERT INTO table (columns) VALUES (...) [ON CONFLICT (key) DO NOTHING]` for many rows."""

    def __init__(self, table: sa.Table, *, skip: Sequence[str] = (), ignore_conflict_on: str | None = None):
        self.table = table
        self.columns = [column for column in table.columns if column.name not in skip]
        self.ignore_conflict_on = ignore_conflict_on
        self._bound: dict[str, tuple[str, list[tuple[str, Processor]]]] = {}

    def _bind(self, dialect: Dialect) -> tuple[str, list[tuple[str, Processor]]]:
        if dialect.name not in self._bound:
            quote = dialect.identifier_preparer.quote
            placeholder = _PLACEHOLDERS[dialect.paramstyle]  # SQLite's and psycopg's styles
            # only the schema's own table and column names (quoted) go into the text; values are bound
            names = ", ".join(quote(column.name) for column in self.columns)
            values = ", ".join(placeholder for _ in self.columns)
            sql = f"INSERT INTO {quote(self.table.name)} ({names}) VALUES ({values})"  # noqa: S608
            if self.ignore_conflict_on:
                sql += f" ON CONFLICT ({quote(self.ignore_conflict_on)}) DO NOTHING"
            processors = [
                (c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in self.columns
            ]
            self._bound[dialect.name] = (sql, processors)
        return self._bound[dialect.name]

    def execute(self, conn: Connection, rows: Sequence[Row]) -> int:
        """Insert `rows` (each with a value for every column) in the caller's transaction; the number
        of rows inserted (fewer than given when conflicts were ignored)."""
        sql, params = self._params(conn.dialect, rows)
        return conn.exec_driver_sql(sql, params).rowcount

    def executemany(self, cursor: Any, dialect: Dialect, rows: Sequence[Row]) -> int:
        """The same on a DB-API cursor, in its transaction (StoreBase._driver_write)."""
        sql, params = self._params(dialect, rows)
        cursor.executemany(sql, params)
        return int(cursor.rowcount)

    def _params(self, dialect: Dialect, rows: Sequence[Row]) -> tuple[str, list[tuple[Any, ...]]]:
        sql, processors = self._bind(dialect)
        params = [
            tuple(row[name] if process is None else process(row[name]) for name, process in processors)
            for row in rows
        ]
        return sql, params
