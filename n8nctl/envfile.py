"""`n8nctl init`: write `.env` from `.env.example` with fresh secrets, and the editor's htpasswd file.
Values are never printed."""

from __future__ import annotations

import hashlib
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
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    "BRIDGE_POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(24),
    "REDIS_PASSWORD": lambda: secrets.token_urlsafe(24),
    "NGINX_EDITOR_PASSWORD": lambda: secrets.token_urlsafe(24),
}
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
_CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


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
    write_private(target, "\n".join(lines) + "\n")
    return generated, backup


def set_values(env_file: Path, values: dict[str, str]) -> None:
    """Set variables in an existing `.env` in place (other lines kept), atomically, mode 0600."""
    if not env_file.is_file():
        raise ConfigError(f"{env_file} not found", fix="Run n8nctl init first.")
    pending, lines = dict(values), []
    for line in env_file.read_text().splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match["name"] in pending:
            line = f"{match['name']}={pending.pop(match['name'])}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in pending.items()]
    write_private(env_file, "\n".join(lines) + "\n")


def write_private(target: Path, text: str) -> None:
    """Write `text` to `target` with mode 0600 from the first byte, replacing it atomically (a folder
    this creates is 0700)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, target)


def sha512_crypt(password: str, salt: str) -> str:
    """`$6$salt$hash`: SHA-512 crypt (glibc, 5000 rounds), the strongest scheme every nginx's crypt(3)
    reads. Written out here because Python's `crypt` module is deprecated (gone in 3.13)."""
    key, salt_bytes = password.encode(), salt.encode()[:16]
    sha = hashlib.sha512
    alternate = sha(key + salt_bytes + key).digest()
    digest = sha(key + salt_bytes)
    digest.update((alternate * (len(key) // 64 + 1))[: len(key)])
    length = len(key)
    while length:
        digest.update(alternate if length & 1 else key)
        length >>= 1
    result = digest.digest()
    key_run = (sha(key * len(key)).digest() * (len(key) // 64 + 1))[: len(key)]
    salt_run = (sha(salt_bytes * (16 + result[0])).digest() * (len(salt_bytes) // 64 + 1))[: len(salt_bytes)]
    for round_ in range(5000):
        step = sha(key_run if round_ & 1 else result)
        if round_ % 3:
            step.update(salt_run)
        if round_ % 7:
            step.update(key_run)
        step.update(result if round_ & 1 else key_run)
        result = step.digest()
    encoded = []
    for k in range(21):
        a, b, c = result[k], result[k + 21], result[k + 42]
        group = ((a, b, c), (b, c, a), (c, a, b))[k % 3]
        encoded.append(_crypt64((group[0] << 16) | (group[1] << 8) | group[2], 4))
    encoded.append(_crypt64(result[63], 2))
    return f"$6${salt_bytes.decode()}${''.join(encoded)}"


def _crypt64(value: int, count: int) -> str:
    chars = []
    for _ in range(count):
        chars.append(_CRYPT64[value & 0x3F])
        value >>= 6
    return "".join(chars)


def write_htpasswd(path: Path, user: str, password: str) -> None:
    """The editor's basic-auth file for nginx (mode 0600: install a copy nginx's workers may read)."""
    if not password:
        raise ConfigError(
            "NGINX_EDITOR_PASSWORD is empty",
            why="the editor's basic auth needs a password",
            fix="Set NGINX_EDITOR_PASSWORD in .env, then n8nctl init --htpasswd.",
        )
    salt = "".join(secrets.choice(_CRYPT64) for _ in range(16))
    write_private(path, f"{user}:{sha512_crypt(password, salt)}\n")


def write_editor_htpasswd(project_dir: Path) -> tuple[Path, str]:
    """The editor's htpasswd file from the project's `.env` (NGINX_EDITOR_USER, NGINX_EDITOR_PASSWORD,
    NGINX_HTPASSWD_FILE); returns where it went and for which user."""
    from n8nctl.settings import load_settings

    settings = load_settings(_env_file=project_dir / ".env")
    user, password = settings.nginx_editor_user, settings.nginx_editor_password.get_secret_value()
    write_htpasswd(settings.htpasswd_file, user, password)
    return settings.htpasswd_file, user
