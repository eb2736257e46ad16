"""Backup -> destroy -> restore on the compose runtime, on the test engine: pg_dump inside the postgres
container, the n8n-data volume from the n8n container; the drill in a compose project of its own; the
volumes removed and everything brought back (workflows, credentials usable, executions, audit)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from n8nctl.workflows import normalize
from tests.docker.conftest import ComposeStack, make_stack, remove_stack
from tests.docker_engine import Engine
from tests.harness import Receiver

pytestmark = pytest.mark.docker
MEASURED: dict[str, float] = {}


@pytest.fixture(scope="module")
def stack(docker_engine: Engine, images: dict[str, str]) -> Iterator[ComposeStack]:
    stack = make_stack(docker_engine, images, prod=False)
    try:
        done = stack.up()
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.compose('logs', '--tail', '30')}"
        yield stack
    finally:
        remove_stack(stack)


@pytest.fixture(scope="module")
def receiver(stack: ComposeStack) -> Iterator[Receiver]:
    receiver = stack.receiver()
    yield receiver
    receiver.stop()


def snapshot(stack: ComposeStack) -> dict[str, Any]:
    workflows = {
        w["id"]: (w["active"], normalize(stack.n8n_api(f"workflows/{w['id']}")))
        for w in stack.n8n_api("workflows")["data"]
    }
    executions = {e["id"]: e["status"] for e in stack.n8n_api("executions?limit=250")["data"]}
    audit = stack.cli("audit", "export", "--since", "2000-01-01").stdout.splitlines()
    return {"workflows": workflows, "executions": executions, "audit": audit}


@pytest.mark.timeout(1500)  # a backup, a drill in a compose project of its own, a restore: minutes
def test_compose_backup_verify_destroy_restore(stack: ComposeStack, receiver: Receiver) -> None:
    client = stack.client()
    jobs = [stack.job(receiver) for _ in range(2)]
    for job in jobs:
        client.submit(job)
    stack.delivered(receiver, {job["job_id"] for job in jobs})
    before = snapshot(stack)
    assert len(before["executions"]) >= 2 and before["audit"]

    started = time.monotonic()
    done = stack.cli("backup", "--json")
    MEASURED["backup_seconds"] = round(time.monotonic() - started, 1)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    MEASURED["backup_bytes"] = line["size"]
    manifest = json.loads((stack.project / "backups" / line["id"] / "manifest.json").read_text())
    assert (manifest["runtime"], manifest["n8n_database"]) == ("compose", "postgres")
    assert {f["path"] for f in manifest["files"]} >= {"n8n/database.pgdump", "n8n/user-folder.tar"}
    assert manifest["credentials"] == 2 and manifest["n8n_migration"] != "none"
    assert stack.settings.n8n_encryption_key.get_secret_value() not in done.stdout + json.dumps(manifest)

    started = time.monotonic()
    drill = stack.cli("backups", "verify", line["id"], timeout=900)
    MEASURED["drill_seconds"] = round(time.monotonic() - started, 1)
    assert drill.returncode == 0 and "restorable: yes" in drill.stdout, drill.stdout + drill.stderr
    projects = stack.engine.docker("compose", "ls", "-a", "--format", "json")
    assert "drill-" not in projects, "the drill's project and volumes are gone"
    assert stack.cli("status").returncode == 0, "the drill never touched the stack"

    # disaster: containers, n8n's database and user folder volumes, and the bridge's store are gone
    assert stack.cli("down").returncode == 0
    for volume in ("postgres-data", "n8n-data"):
        stack.engine.docker("volume", "rm", f"n8nctl-{stack.name}_{volume}")
    for name in ("bridge.db", "bridge.db-wal", "bridge.db-shm", "n8n-api-key"):
        (stack.project / ".n8nctl" / name).unlink(missing_ok=True)

    started = time.monotonic()
    restored = stack.cli("restore", line["id"], timeout=1200)
    MEASURED["restore_seconds"] = round(time.monotonic() - started, 1)
    assert restored.returncode == 0, (
        f"{restored.stdout}\n{restored.stderr}\n{stack.compose('logs', '--tail', '30')}"
    )
    after = snapshot(stack)
    assert after["workflows"] == before["workflows"], "same ids, nodes and active state"
    assert {i: after["executions"].get(i) for i in before["executions"]} == before["executions"]
    assert after["audit"][: len(before["audit"])] == before["audit"], "every audit row, unchanged"
    assert any('"action": "restored"' in row for row in after["audit"][len(before["audit"]) :])

    again = stack.job(receiver)
    client.submit(again)
    result = stack.delivered(receiver, {again["job_id"]})[again["job_id"]]
    assert result["status"] == "success", "the restored credentials run the workflow and sign its result"
    assert not receiver.rejected
    print(f"\nMEASURED compose {json.dumps(MEASURED)}")


def test_prune_removes_dangling_images_on_compose(stack: ComposeStack, tmp_path) -> None:
    """An image rebuilt under the same tag leaves the old one dangling: prune counts it, then removes it."""
    from tests.stand_ins import BASE

    for layer in ("first", "second"):
        (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo {layer} > /layer\n")
        stack.engine.docker("build", "-q", "-t", "n8nctl-test/prune-me:1", str(tmp_path))

    def dangling_images() -> set[str]:
        return set(stack.engine.docker("images", "-q", "-f", "dangling=true").split())

    dangling = dangling_images()
    assert dangling
    dry = stack.cli_json("prune", "--dry-run")
    assert dry["images"] == len(dangling) and dry["dry_run"] is True
    assert dangling_images() == dangling, "a dry run removes nothing"
    done = stack.cli_json("prune")
    assert done["images"] == len(dangling)
    assert dangling_images() == set()
    stack.engine.docker("rmi", "n8nctl-test/prune-me:1")
