"""One error family for n8nctl. The CLI maps each class to a documented exit code.

Every message answers three questions for a tired operator: what failed, why, and what to do next.
Messages never contain secret values.
"""

from __future__ import annotations


class N8nctlError(Exception):
    """A failure the operator can act on. Exit code 1."""

    exit_code = 1

    def __init__(self, what: str, *, why: str = "", fix: str = "") -> None:
        self.what, self.why, self.fix = what, why, fix
        super().__init__(self.line())

    def line(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(f"because {self.why}")
        text = ": ".join(parts)
        return f"{text}. {self.fix}" if self.fix else text


class ConfigError(N8nctlError):
    """Settings, .env or registry are wrong. Exit code 2 (same as a usage error)."""

    exit_code = 2


class NotFoundError(N8nctlError):
    """The job, workflow or file asked for does not exist. Exit code 4."""

    exit_code = 4


class UnreachableError(N8nctlError):
    """A service (bridge, n8n, database) did not answer. Exit code 5."""

    exit_code = 5


class SchemaError(N8nctlError):
    """The bridge's job store is not at the schema revision of this code. Exit code 9."""

    exit_code = 9


class RemoteError(N8nctlError):
    """A service answered with an error. Exit code 6. Carries the HTTP status and error_code."""

    exit_code = 6

    def __init__(self, what: str, *, status: int, error_code: str, why: str = "", fix: str = "") -> None:
        self.status, self.error_code = status, error_code
        super().__init__(what, why=why or f"HTTP {status} {error_code}", fix=fix)


class NotRestorableError(N8nctlError):
    """A backup fails its checks: a checksum, its decryption, or the restore drill. Exit code 7."""

    exit_code = 7


class BusyError(N8nctlError):
    """Another backup, restore or prune holds the lock. Exit code 8 (cron: try again later)."""

    exit_code = 8
