"""`n8nctl bridge migrate` and the bridge's refusal to serve a schema that is not its code's head, on
SQLite and on a real PostgreSQL (the `postgres`-marked cases). docs/adr/0040."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from n8nctl.errors import SchemaError
from n8nctl.store import Store, migrations
from n8nctl.store.schema import metadata
from tests.harness import clean_env, free_port

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'bridge.db'}"


def n8nctl(tmp_path: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, in a project folder of its own, on `store_url`."""
    (tmp_path / "workflows").mkdir(exist_ok=True)
    (tmp_path / "workflows" / "registry.json").write_bytes(
        (PROJECT / "workflows" / "registry.json").read_bytes()
    )
    env = {**clean_env(), "N8NCTL_PROJECT_DIR": str(tmp_path), "BRIDGE_DATABASE_URL": store_url}
    return subprocess.run(
        [str(BIN / "n8nctl"), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.current(conn)
    finally:
        engine.dispose()


def test_migrate_creates_the_schema_then_has_nothing_to_do(store_url: str, tmp_path: Path) -> None:
    first = n8nctl(tmp_path, store_url, "bridge", "migrate")
    assert first.returncode == 0, first.stderr
    head = migrations.head()
    assert first.stdout == f"job store migrated from empty to {head}\n"
    assert set(metadata.tables) <= tables(store_url)
    assert revision(store_url) == head

    again = n8nctl(tmp_path, store_url, "bridge", "migrate", "--json")
    assert again.returncode == 0, again.stderr
    assert '"migrated": false' in again.stdout and f'"to": "{head}"' in again.stdout


def test_migrate_sql_prints_the_engines_statements_and_touches_nothing(
    store_url: str, tmp_path: Path
) -> None:
    sqlite = store_url.startswith("sqlite")
    token = "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE"  # each engine's own DDL
    printed = n8nctl(tmp_path, store_url, "bridge", "migrate", "--sql")
    assert printed.returncode == 0, printed.stderr
    assert "CREATE TABLE jobs" in printed.stdout and token in printed.stdout
    # the last statement on alembic_version leaves it at head (INSERT of the first, UPDATEs after)
    last = [line for line in printed.stdout.splitlines() if "alembic_version" in line][-1]
    assert f"'{migrations.head()}'" in last and last.startswith(("INSERT", "UPDATE")), last
    if sqlite:
        assert not (tmp_path / "bridge.db").exists(), "offline mode connects to nothing"
    else:
        assert tables(store_url) == set()


def test_a_bridge_refuses_a_schema_behind_its_code_with_one_line_and_exit_9(
    store_url: str, tmp_path: Path
) -> None:
    port = free_port()
    refused = n8nctl(tmp_path, store_url, "bridge", "serve", "--port", str(port))
    assert refused.returncode == 9, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "behind this bridge's" in lines[0] and "n8nctl bridge migrate" in lines[0]
    assert tables(store_url) <= {"alembic_version"}, "the refusing bridge migrated nothing"


def test_check_schema_accepts_head_and_refuses_empty_and_unknown_revisions(store_url: str) -> None:
    store = Store(store_url)
    try:
        with pytest.raises(SchemaError, match="revision none, behind"):
            store.check_schema()
        assert store.migrate() == (None, migrations.head())
        store.check_schema()
        with store._writer.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
        with pytest.raises(SchemaError, match=r"f00d, which this bridge .* does not know") as refused:
            store.check_schema()
        assert refused.value.exit_code == 9
    finally:
        store.close()


async def test_the_bridge_itself_refuses_to_start_on_an_unmigrated_store(make_settings, registry) -> None:
    """Bridge.start checks too (an ASGI server started without `n8nctl bridge serve`)."""
    from n8nctl.bridge.app import create_app

    app = create_app(make_settings(), registry, workers=False)
    with pytest.raises(SchemaError):
        async with app.router.lifespan_context(app):
            pass
