"""The backup tier: a real n8n and bridge (native runtime, `n8nctl up` as in tests/e2e) and a real
S3-compatible server (SeaweedFS, tests/backup/s3_server.py), both on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backup.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.e2e.conftest import Stack, receiving, running_stack
from tests.harness import Receiver

BUCKET = "n8nctl-backups"
SLOW_DEADLINE = 600  # timeout_seconds of the job in flight during the backup


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backup_key() -> str:
    from pyrage import x25519

    return str(x25519.Identity.generate())


@pytest.fixture(scope="module")
def native_stack(s3_server: S3Server, backup_key: str) -> Iterator[Stack]:
    with running_stack(
        "e2e",
        workflows={"slow_echo": {"max_timeout_seconds": SLOW_DEADLINE}},
        N8NCTL_BACKUP_ENCRYPTION_KEY=backup_key,
        N8NCTL_BACKUP_S3_BUCKET=BUCKET,
        N8NCTL_BACKUP_S3_PREFIX="flowbiz/n8nctl",
        N8NCTL_BACKUP_S3_ENDPOINT_URL=s3_server.endpoint,
        N8NCTL_BACKUP_S3_REGION="us-east-1",
        N8NCTL_BACKUP_S3_ACCESS_KEY_ID=ACCESS_KEY,
        N8NCTL_BACKUP_S3_SECRET_ACCESS_KEY=SECRET_KEY,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def native_receiver(native_stack: Stack) -> Iterator[Receiver]:
    with receiving(native_stack) as receiver:
        yield receiver
