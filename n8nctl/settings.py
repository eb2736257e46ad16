"""The one settings object. Precedence: explicit value (CLI flag) > environment > `.env` > default.

Every field here is documented in `.env.example`; a test keeps the two in step.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from n8nctl.errors import ConfigError
from n8nctl.signing import Keyring

DEVELOPMENT_CALLBACK_HOSTS = "127.0.0.1,localhost,::1"
DEFAULT_RETRY_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
# Values written into rendered compose and nginx files: no spaces, quotes, ';', '{', '}' or '$', so a
# setting can never add a directive or an interpolation to them.
SAFE_VALUE = r"^[A-Za-z0-9._/:@+\[\]-]+$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True)

    n8nctl_project_dir: Path = Field(default_factory=Path.cwd)
    n8nctl_state_dir: Path | None = None
    n8nctl_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "n8nctl")
    # the stack's name: its folder stacks/<name>/ and compose project n8nctl-<name>; unset: dev or prod
    n8nctl_stack: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")

    bridge_database_url: SecretStr = SecretStr("")  # may carry a password
    bridge_redis_url: SecretStr = SecretStr("")  # shared replay guard and rate limit; may carry a password
    bridge_client_secrets: SecretStr = SecretStr("")
    bridge_callback_signing_secret: SecretStr = SecretStr("")
    bridge_n8n_callback_secret: SecretStr = SecretStr("")
    bridge_n8n_webhook_token: SecretStr = SecretStr("")
    bridge_n8n_webhook_header: str = "X-Bridge-Token"
    bridge_rate_limit: str = "120/minute"
    bridge_max_timeout_seconds: int = Field(default=3600, ge=1)
    bridge_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    bridge_environment: Literal["production", "development"] = "production"
    bridge_callback_allow_hosts: str = ""
    bridge_callback_retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    bridge_callback_timeout_seconds: float = Field(default=10.0, gt=0)
    bridge_host: str = "127.0.0.1"
    bridge_port: int = Field(default=8000, ge=1, le=65535)
    bridge_public_url: str = ""
    bridge_poll_interval_seconds: float = Field(default=0.5, gt=0)
    bridge_reconcile_grace_seconds: float = Field(default=60.0, gt=0)
    bridge_adaptive_concurrency: bool = True
    bridge_dispatch_start_limit: int = Field(default=1, ge=1)
    bridge_workers: bool = True
    bridge_registry_path: Path | None = None

    n8n_version: str = "2.40.7"
    n8n_port: int = Field(default=5678, ge=1, le=65535)
    n8n_runners_broker_port: int = Field(default=5679, ge=1, le=65535)
    n8n_base_url: str = ""
    n8n_api_key: SecretStr = SecretStr("")
    n8n_encryption_key: SecretStr = SecretStr("")
    n8n_owner_email: str = "owner@flowbiz.local"
    n8n_owner_password: SecretStr = SecretStr("")

    n8nctl_bridge_url: str = ""
    n8nctl_client_id: str = "flowbiz"
    n8nctl_client_secret: SecretStr = SecretStr("")

    # --- monitoring: thresholds of `n8nctl check`, `n8nctl status` and the Prometheus alert rules ---
    n8nctl_alert_job_failure_rate: float = Field(default=0.2, ge=0, le=1)
    n8nctl_alert_callback_failure_rate: float = Field(default=0.2, ge=0, le=1)
    n8nctl_alert_latency_p95_seconds: float = Field(default=300.0, gt=0)
    n8nctl_alert_queue_depth: int = Field(default=500, ge=0)
    n8nctl_alert_dead_letters: int = Field(default=0, ge=0)
    n8nctl_alert_min_sample: int = Field(default=10, ge=1)
    n8nctl_alert_url: SecretStr = SecretStr("")  # a chat webhook URL is a credential

    # --- stacks: compose runtime, images, nginx edge (issue 4) ---
    n8nctl_runtime: Literal["auto", "compose", "native"] = "auto"
    n8nctl_workers: int = Field(default=1, ge=1, le=32)
    n8nctl_worker_concurrency: int = Field(default=10, ge=1, le=200)
    # --- native queue mode (issue 11): n8n main + workers on PostgreSQL and Redis, without Docker ---
    n8nctl_queue_mode: bool = False
    n8nctl_worker_base_port: int = Field(default=5690, ge=1024, le=65535 - 64)
    n8n_database_url: SecretStr = SecretStr("")  # may carry a password
    n8n_redis_url: SecretStr = SecretStr("")  # may carry a password
    redis_port: int = Field(default=6380, ge=1, le=65535)
    redis_password: SecretStr = SecretStr("")
    n8n_image: str = Field(default="docker.n8n.io/n8nio/n8n", pattern=SAFE_VALUE)
    bridge_image: str = Field(default="n8nctl-bridge", pattern=SAFE_VALUE)
    bridge_base_image: str = Field(default="python:3.11.11-slim-bookworm", pattern=SAFE_VALUE)
    postgres_image: str = Field(default="postgres:16.6-alpine", pattern=SAFE_VALUE)
    redis_image: str = Field(default="redis:7.4.2-alpine", pattern=SAFE_VALUE)
    postgres_password: SecretStr = SecretStr("")
    postgres_port: int = Field(default=5433, ge=1, le=65535)
    bridge_postgres_password: SecretStr = SecretStr("")
    docker_host: str = ""
    nginx_server_name: str = Field(default="bridge.example.com", pattern=SAFE_VALUE)
    nginx_editor_server_name: str = Field(default="n8n.example.com", pattern=SAFE_VALUE)
    nginx_listen: str = Field(default="443", pattern=SAFE_VALUE)
    nginx_http_listen: str = Field(default="80", pattern=SAFE_VALUE)
    nginx_tls_certificate: str = Field(default="", pattern=r"^$|" + SAFE_VALUE)
    nginx_tls_certificate_key: str = Field(default="", pattern=r"^$|" + SAFE_VALUE)
    nginx_rate_limit: str = Field(default="10r/s", pattern=r"^[0-9]+r/[sm]$")
    nginx_rate_burst: int = Field(default=20, ge=0)
    nginx_editor_allow: str = "127.0.0.1/32"
    nginx_editor_user: str = Field(default="operator", pattern=r"^[A-Za-z0-9._-]+$")
    nginx_editor_password: SecretStr = SecretStr("")
    nginx_htpasswd_file: str = Field(default="", pattern=r"^$|" + SAFE_VALUE)

    # --- backup, restore, prune (issue 10) ---
    n8nctl_backup_dir: Path | None = None
    n8nctl_backup_encryption_key: SecretStr = SecretStr("")  # an age identity, AGE-SECRET-KEY-1...
    n8nctl_backup_s3_bucket: str = ""
    n8nctl_backup_s3_prefix: str = Field(default="n8nctl", pattern=r"^[A-Za-z0-9._/-]*$")
    n8nctl_backup_s3_region: str = ""
    n8nctl_backup_s3_endpoint_url: str = ""
    n8nctl_backup_s3_access_key_id: str = ""
    n8nctl_backup_s3_secret_access_key: SecretStr = SecretStr("")
    n8nctl_backup_s3_sse: Literal["AES256", "aws:kms", "none"] = "AES256"
    n8nctl_backup_keep_daily: int = Field(default=7, ge=0)
    n8nctl_backup_keep_weekly: int = Field(default=4, ge=0)
    n8nctl_backup_keep_monthly: int = Field(default=6, ge=0)
    n8nctl_prune_executions_hours: int = Field(default=336, ge=0)

    @field_validator("nginx_editor_allow")
    @classmethod
    def _cidrs_parse(cls, value: str) -> str:
        for cidr in value.split(","):
            try:
                ipaddress.ip_network(cidr.strip())
            except ValueError as exc:
                raise ValueError(f"NGINX_EDITOR_ALLOW: {exc} (comma-separated CIDRs)") from None
        return value

    @property
    def editor_allow(self) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(cidr.strip())) for cidr in self.nginx_editor_allow.split(","))

    @property
    def htpasswd_file(self) -> Path:
        """The editor's basic-auth file (`n8nctl init` writes it; never committed)."""
        return (
            Path(self.nginx_htpasswd_file) if self.nginx_htpasswd_file else self.state_dir / "editor.htpasswd"
        )

    @property
    def tls_files(self) -> tuple[str, str]:
        """Certificate and key for the public servers; default: certbot's paths for the bridge's name."""
        live = f"/etc/letsencrypt/live/{self.nginx_server_name}"
        return (
            self.nginx_tls_certificate or f"{live}/fullchain.pem",
            self.nginx_tls_certificate_key or f"{live}/privkey.pem",
        )

    @field_validator("bridge_redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            # the message never quotes the value: it may hold a password
            raise ValueError("BRIDGE_REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("bridge_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        from n8nctl.bridge.ratelimit import Rate

        Rate.parse(value)
        return value

    @field_validator("bridge_callback_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError as exc:
            raise ValueError("BRIDGE_CALLBACK_RETRY_SCHEDULE must be comma-separated seconds") from exc
        if not delays or any(d < 0 for d in delays):
            raise ValueError("BRIDGE_CALLBACK_RETRY_SCHEDULE needs at least one delay, none negative")
        return value

    @property
    def state_dir(self) -> Path:
        return self.n8nctl_state_dir or self.n8nctl_project_dir / ".n8nctl"

    def stack_name(self, *, prod: bool) -> str:
        """N8NCTL_STACK, else `prod` for the hardened stack and `dev` for the other."""
        return self.n8nctl_stack or ("prod" if prod else "dev")

    def stack_dir(self, name: str) -> Path:
        return self.n8nctl_project_dir / "stacks" / name

    @property
    def backup_dir(self) -> Path:
        return self.n8nctl_backup_dir or self.n8nctl_project_dir / "backups"

    @property
    def n8n_url(self) -> str:
        return (self.n8n_base_url or f"http://127.0.0.1:{self.n8n_port}").rstrip("/")

    @property
    def bridge_url(self) -> str:
        """Where the CLI reaches the bridge."""
        return (self.n8nctl_bridge_url or f"http://127.0.0.1:{self.bridge_port}").rstrip("/")

    @property
    def public_url(self) -> str:
        """Where n8n reaches the bridge (results go to <this>/v1/callbacks/n8n)."""
        return (self.bridge_public_url or f"http://127.0.0.1:{self.bridge_port}").rstrip("/")

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "n8n-api-key"

    def n8n_api_key_value(self) -> str:
        """N8N_API_KEY, else the key `n8nctl up` created and stored (mode 0600) in the state folder."""
        if value := self.n8n_api_key.get_secret_value():
            return value
        try:
            return self.api_key_file.read_text().strip()
        except FileNotFoundError:
            return ""

    @property
    def database_url(self) -> str:
        return self.bridge_database_url.get_secret_value() or f"sqlite:///{self.state_dir / 'bridge.db'}"

    @property
    def registry_path(self) -> Path:
        return self.bridge_registry_path or self.n8nctl_project_dir / "workflows" / "registry.json"

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.bridge_callback_retry_schedule.split(","))

    @property
    def callback_allow_hosts(self) -> frozenset[str]:
        """Hosts a callback_url may name although they resolve to non-global addresses (and use plain
        http): BRIDGE_CALLBACK_ALLOW_HOSTS, else loopback in development and nothing in production."""
        text = self.bridge_callback_allow_hosts or (
            DEVELOPMENT_CALLBACK_HOSTS if self.bridge_environment == "development" else ""
        )
        return frozenset(h.strip().lower().strip("[]") for h in text.split(",") if h.strip())

    @cached_property
    def client_secrets(self) -> dict[str, Keyring]:
        """`client_id:whsec_a|whsec_b,other:whsec_c` -> {client_id: Keyring}."""
        clients: dict[str, Keyring] = {}
        raw = self.bridge_client_secrets.get_secret_value().strip()
        for position, entry in enumerate(filter(None, (part.strip() for part in raw.split(","))), 1):
            client_id, sep, secrets = entry.partition(":")
            try:
                if not sep or not client_id or not secrets:
                    raise ValueError("it is not 'client_id:whsec_...'")
                clients[client_id] = Keyring.parse(secrets)
            except ValueError as exc:
                raise ConfigError(  # names the entry by position: its text may be a secret
                    "BRIDGE_CLIENT_SECRETS is malformed",
                    why=f"entry {position}: {exc}",
                    fix="Write it as client_id:whsec_...,other:whsec_... (| between rotated secrets).",
                ) from None
        return clients

    @cached_property
    def callback_signing_keys(self) -> Keyring:
        """BRIDGE_CALLBACK_SIGNING_SECRET: every live one signs each callback (rotation)."""
        return _keyring("BRIDGE_CALLBACK_SIGNING_SECRET", self.bridge_callback_signing_secret)

    @cached_property
    def n8n_callback_keys(self) -> Keyring:
        """BRIDGE_N8N_CALLBACK_SECRET: a result signed with any live one is accepted (rotation)."""
        return _keyring("BRIDGE_N8N_CALLBACK_SECRET", self.bridge_n8n_callback_secret)

    def check_bridge_secrets(self) -> None:
        """Every configured signing secret parses, and no two purposes share one (SECRETS_POLICY rule
        6: a client holding n8n's secret could post any job's result, and one holding another
        client's secret could act as that client). Raises ConfigError naming settings, not values."""
        owners: dict[bytes, str] = {}
        named = [(f"BRIDGE_CLIENT_SECRETS (client {c})", k) for c, k in self.client_secrets.items()]
        named += [
            ("BRIDGE_CALLBACK_SIGNING_SECRET", self.callback_signing_keys),
            ("BRIDGE_N8N_CALLBACK_SECRET", self.n8n_callback_keys),
        ]
        for name, keyring in named:
            for key in set(keyring.hmac_keys()):
                if (other := owners.setdefault(key, name)) != name:
                    raise ConfigError(
                        f"{other} and {name} share a secret",
                        why="each signing secret has one purpose, or its holder can sign for the other",
                        fix="Generate a new one for either (n8nctl secrets rotate NAME).",
                    )


def _keyring(name: str, value: SecretStr) -> Keyring:
    try:
        return Keyring.parse(value.get_secret_value())
    except ValueError as exc:
        raise ConfigError(
            f"{name} is malformed",
            why=str(exc),
            fix="Write it as whsec_ followed by base64 (n8nctl init generates one).",
        ) from None


def load_settings(**overrides: object) -> Settings:
    """Resolve settings once; turn pydantic's validation error into a one-line ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(
            f"setting {name} is invalid", why=str(first["msg"]), fix="Fix it in the environment or .env."
        ) from None
