"""Settings and store access for commands. Imports are deferred so `n8nctl --help` stays fast."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from n8nctl.errors import NotFoundError, UnreachableError

if TYPE_CHECKING:
    from n8nctl.settings import Settings
    from n8nctl.store import Store


def settings_from_env() -> Settings:
    from n8nctl.settings import load_settings

    return load_settings()


def state_dir_hint(environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Path:
    """Settings.state_dir without loading the settings (pydantic costs the kill command its first
    tenth of a second): the same sources in the same order (environment, ./.env, the default), read
    with the parser pydantic-settings uses. tests/cli/test_context.py holds the two together."""
    from dotenv import dotenv_values

    cwd = cwd or Path.cwd()
    values = {k.lower(): v for k, v in dotenv_values(cwd / ".env").items() if v}
    values.update({k.lower(): v for k, v in environ.items() if v})
    if values.get("n8nctl_state_dir"):
        return Path(values["n8nctl_state_dir"])
    return Path(values.get("n8nctl_project_dir") or cwd) / ".n8nctl"


def open_store(settings: Settings) -> Store:
    """The bridge's store, for operator commands that read or repair it on the host."""
    from n8nctl.runtimes import current
    from n8nctl.store import Store

    url = current(settings).store_url()
    database = settings.state_dir / "bridge.db"
    if url == f"sqlite:///{database}" and not database.exists():
        raise NotFoundError(
            f"no bridge database at {database}",
            why="the bridge has not run in this project yet",
            fix="Start it (n8nctl up) or set BRIDGE_DATABASE_URL.",
        )
    from n8nctl.store.core import answering

    store = Store(url)
    try:
        with answering():
            store.ping()
    except UnreachableError:
        store.close()
        raise
    return store
