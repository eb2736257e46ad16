"""`n8nctl init`: write `.env` from `.env.example` with fresh secrets. Values are never printed."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.signing import generate_secret

GENERATED: dict[str, Callable[[], str]] = {
    "BRIDGE_CLIENT_SECRETS": lambda: f"flowbiz:{generate_secret()}",
    "BRIDGE_CALLBACK_SIGNING_SECRET": generate_secret,
    # n8n's Crypto node takes its HMAC key as text: the key is an ASCII token, base64'd into whsec_ form
    "BRIDGE_N8N_CALLBACK_SECRET": lambda: generate_secret(secrets.token_urlsafe(32).encode()),
    "BRIDGE_N8N_WEBHOOK_TOKEN": lambda: secrets.token_urlsafe(32),
    "N8N_ENCRYPTION_KEY": lambda: secrets.token_urlsafe(32),
    # n8n wants 8-64 characters with a digit and an upper-case letter
    "N8N_OWNER_PASSWORD": lambda: f"Fb7{secrets.token_urlsafe(24)}",
}
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def write_env(project_dir: Path, *, force: bool = False) -> tuple[list[str], Path | None]:
    """Create `.env` (mode 0600). Returns the generated variable names and the backup of a replaced file."""
    example, target = project_dir / ".env.example", project_dir / ".env"
    if not example.is_file():
        raise ConfigError(f"{example} not found", fix="Run n8nctl init from the project folder.")
    backup = None
    if target.exists():
        if not force:
            raise N8nctlError(
                f"{target} already exists",
                why="overwriting it would replace the secrets the running services use",
                fix="Keep it, or pass --force (the old file is kept as .env.bak-<time>).",
            )
        backup = target.with_name(f".env.bak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        shutil.copy2(target, backup)
        backup.chmod(0o600)
    generated, lines = [], []
    for line in example.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match["name"] in GENERATED:
            line = f"{match['name']}={GENERATED[match['name']]()}"
            generated.append(match["name"])
        lines.append(line)
    temporary = target.with_name(".env.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temporary, target)
    return generated, backup
