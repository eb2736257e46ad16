"""`n8nctl doctor`: what is wrong with this host's configuration, by class, each with its own exit
code (docs/cli.md lists them). Findings never quote a secret."""

from __future__ import annotations

import ipaddress
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from n8nctl.envfile import GENERATED
from n8nctl.errors import ConfigError, N8nctlError
from n8nctl.settings import Settings
from n8nctl.signing import secret_key


class Class(NamedTuple):
    code: int
    name: str
    meaning: str


# In this order: `n8nctl doctor` exits with the code of the first class it found.
CLASSES = (
    Class(10, "weak_secret", "a secret is missing, malformed or too short to be safe"),
    Class(11, "shared_secret", "two settings that must differ hold the same secret"),
    Class(12, "env_readable", "the .env file can be read by other users than its owner"),
    Class(13, "exposed_port", "the bridge or n8n listens beyond loopback"),
    Class(14, "n8n_api_key", "n8n refuses the n8n API key n8nctl and the bridge use"),
    Class(
        15, "encryption_key", "N8N_ENCRYPTION_KEY is missing, or is not the key n8n's data is encrypted with"
    ),
    Class(16, "version_mismatch", "the runtimes, or the running n8n, are not on the n8n N8N_VERSION names"),
)
MIN_KEY_BYTES = 24  # whsec keys: init makes 32 random bytes (43 characters of text for n8n's)
MIN_TEXT_CHARS = 16  # tokens and passwords: init makes 32 or more
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Finding:
    check: str
    message: str


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        found = {f.check for f in self.findings}
        return next((c.code for c in CLASSES if c.name in found), 0)


def diagnose(
    settings: Settings, *, api_key_works: bool | None, running_version: str | None = None
) -> Diagnosis:
    """`api_key_works`: n8n's verdict on the API key, None when it could not be asked;
    `running_version`: the version the running n8n reports, None when it does not answer."""
    result = Diagnosis()
    _secrets(settings, result)
    _env_file(settings, result)
    _ports(settings, result)
    if api_key_works is None:
        result.not_checked.append("the n8n API key: no key yet, or n8n does not answer")
    elif not api_key_works:
        result.findings.append(
            Finding(
                "n8n_api_key",
                "n8n refuses the API key (401/403): delete .n8nctl/n8n-api-key and run n8nctl up",
            )
        )
    _encryption_key(settings, result)
    _versions(settings, running_version, result)
    return result


def _versions(settings: Settings, running: str | None, result: Diagnosis) -> None:
    """One n8n version everywhere: the compose image tag is N8N_VERSION, the native runtime installs
    its lock file's pin, and a running n8n says which it is."""
    from n8nctl.runtimes.n8n_npm import pinned_version

    wanted, pinned = settings.n8n_version, pinned_version()
    if wanted != pinned:
        result.findings.append(
            Finding(
                "version_mismatch",
                f"N8N_VERSION is {wanted} (the compose image tag), but the native runtime installs n8n "
                f"{pinned}: set N8N_VERSION={pinned}, or update n8nctl/runtimes/n8n-npm/ (RUNBOOK)",
            )
        )
    if running is None:
        result.not_checked.append("the running n8n's version: n8n does not answer")
    elif running != wanted:
        result.findings.append(
            Finding(
                "version_mismatch",
                f"the running n8n is {running}, N8N_VERSION is {wanted}: n8nctl up runs the configured one "
                "(a backup restores into the version it was taken from only)",
            )
        )


def _value(settings: Settings, name: str) -> str:
    value = getattr(settings, name.lower())
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _secrets(settings: Settings, result: Diagnosis) -> None:
    values = {name: _value(settings, name) for name in GENERATED if name != "N8N_ENCRYPTION_KEY"}
    for name, value in values.items():
        if not value:
            result.findings.append(Finding("weak_secret", f"{name} is not set (n8nctl init generates it)"))
            continue
        why = _weakness(name, value)
        if why:
            result.findings.append(Finding("weak_secret", f"{name} {why}"))
    try:
        settings.check_bridge_secrets()
    except ConfigError as exc:
        if "malformed" not in exc.what:  # malformed ones are weak secrets, reported above
            result.findings.append(Finding("shared_secret", exc.what))
    plain = {n: v for n, v in values.items() if v and not v.startswith(("whsec_", "flowbiz:"))}
    seen: dict[str, str] = {}
    for name, value in plain.items():
        if value in seen:
            result.findings.append(Finding("shared_secret", f"{seen[value]} and {name} hold the same value"))
        seen.setdefault(value, name)


def _weakness(name: str, value: str) -> str:
    if name == "BRIDGE_CLIENT_SECRETS":
        try:
            keyrings = Settings(_env_file=None, bridge_client_secrets=value).client_secrets
        except ConfigError as exc:
            return f"is malformed: {exc.why}"
        keys = [key for keyring in keyrings.values() for key in keyring.hmac_keys()]
    elif name in ("BRIDGE_CALLBACK_SIGNING_SECRET", "BRIDGE_N8N_CALLBACK_SECRET"):
        try:
            keys = [secret_key(part.partition("@")[0]) for part in value.split("|") if part]
        except ValueError as exc:
            return f"is malformed: {exc}"
    else:
        return f"is shorter than {MIN_TEXT_CHARS} characters" if len(value) < MIN_TEXT_CHARS else ""
    if any(len(key) < MIN_KEY_BYTES for key in keys):
        return f"has a key shorter than {MIN_KEY_BYTES} bytes"
    return ""


def _env_file(settings: Settings, result: Diagnosis) -> None:
    env = settings.n8nctl_project_dir / ".env"
    if not env.exists():
        result.not_checked.append(f"{env}: no such file")
        return
    mode = stat.S_IMODE(env.stat().st_mode)
    if mode & 0o077:
        result.findings.append(
            Finding(
                "env_readable", f"{env} has mode {mode:04o}: other users can read its secrets (chmod 600)"
            )
        )


def _ports(settings: Settings, result: Diagnosis) -> None:
    if settings.bridge_host not in LOOPBACK_NAMES and not _loopback(settings.bridge_host):
        result.findings.append(
            Finding(
                "exposed_port",
                f"BRIDGE_HOST is {settings.bridge_host}: the bridge would listen beyond loopback "
                "(the system nginx is the only public ingress, docs/adr/0010)",
            )
        )
    ports = {
        settings.bridge_port: "the bridge (BRIDGE_PORT)",
        settings.n8n_port: "n8n (N8N_PORT)",
        settings.n8n_runners_broker_port: "n8n's task broker (N8N_RUNNERS_BROKER_PORT)",
    }
    for address, port in listening_sockets():
        if port in ports and not address.is_loopback:
            result.findings.append(
                Finding("exposed_port", f"{ports[port]} listens on {address} port {port}, beyond loopback")
            )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_sockets(
    proc: Path = Path("/proc/net"),
) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Every TCP socket listening on this host (Linux's /proc/net/tcp and tcp6), as (address, port)."""
    found = []
    for table in ("tcp", "tcp6"):
        path = proc / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # the kernel writes each 32-bit word of the address in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((ipaddress.ip_address(words), int(port, 16)))
    return found


def _encryption_key(settings: Settings, result: Diagnosis) -> None:
    key = settings.n8n_encryption_key.get_secret_value()
    if not key:
        result.findings.append(
            Finding(
                "encryption_key",
                "N8N_ENCRYPTION_KEY is not set: n8n's credentials depend on it (n8nctl init)",
            )
        )
        return
    config = settings.state_dir / "n8n" / ".n8n" / "config"  # the native runtime's n8n user folder
    if not config.exists():
        result.not_checked.append(
            "the encryption key n8n uses: no native n8n data here (compose keeps it in a volume)"
        )
        return
    try:
        stored = json.loads(config.read_text()).get("encryptionKey")
    except (ValueError, AttributeError):
        stored = None
    if stored != key:
        result.findings.append(
            Finding(
                "encryption_key",
                f"N8N_ENCRYPTION_KEY is not the key in {config}: n8n refuses to start, and its stored "
                "credentials cannot be decrypted (restore the key that goes with this data)",
            )
        )


class DoctorError(N8nctlError):
    """`n8nctl doctor` found something; the exit code is the first class found (CLASSES)."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        self.exit_code = diagnosis.exit_code()
        classes = sorted({f.check for f in diagnosis.findings}, key=[c.name for c in CLASSES].index)
        super().__init__(
            f"doctor found {len(diagnosis.findings)} problem(s) ({', '.join(classes)})",
            fix="Fix each line above; docs/cli.md lists the exit code of each class.",
        )
