"""Shared output: `--json` on every command that reports; tables only here; data on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def emit(data: Any, *, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print `data` (a dict or a list of dicts) as JSON or as a table of `columns`."""
    if as_json:
        click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=False))
        return
    from tabulate import tabulate

    rows = data if isinstance(data, list) else [data]
    columns = columns or (list(rows[0]) if rows else [])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    if isinstance(data, list):
        click.echo(tabulate(cells, headers=list(columns)) if rows else "(none)")
    else:
        click.echo(tabulate(list(zip(columns, cells[0], strict=True)), tablefmt="plain"))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)[:80]
    return str(value)
