"""workflows/registry.json: which workflows exist, who may run them, and their limits."""

from __future__ import annotations

from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from n8nctl.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

RETENTION_DAYS = {"standard": 90, "financial": 365}
MAX_INPUT_ERRORS = 5
MAX_PROBLEM_CHARS = 200


class WorkflowEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str
    webhook_path: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]*$")
    description: str
    enabled: bool = True
    max_timeout_seconds: int = Field(ge=1)
    max_concurrency: int = Field(default=4, ge=1)
    expected_duration_seconds: int = Field(default=30, ge=0)
    retention: Literal["standard", "financial"] = "standard"
    allowed_clients: tuple[str, ...] = Field(min_length=1)
    inputs_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_is_valid(self) -> WorkflowEntry:
        if self.inputs_schema is not None:
            try:
                jsonschema_rs.meta.validate(self.inputs_schema)
                _ = self._validator  # compiled here: a $ref that does not resolve fails at load
            except jsonschema_rs.ValidationError as exc:
                raise ValueError(f"inputs_schema is not a valid JSON Schema: {exc.message}") from None
        return self

    @cached_property
    def _validator(self) -> jsonschema_rs.Validator:
        # Compiled (Rust): ~3 us for a pilot's inputs, where the reference implementation takes ~80 us.
        # offline: a $ref is resolved inside the schema only; the bridge fetches nothing to validate.
        # Formats are annotations, as the 2020-12 default and the reference implementation have them.
        schema = self.inputs_schema or {}
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True)

    @cached_property
    def _explainer(self) -> Draft202012Validator:
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.inputs_schema or {})

    @property
    def retention_days(self) -> int:
        return RETENTION_DAYS[self.retention]

    def allows(self, client_id: str) -> bool:
        return "*" in self.allowed_clients or client_id in self.allowed_clients

    def input_errors(self, inputs: dict[str, Any]) -> list[str]:
        """JSON Schema violations of `inputs`: the first MAX_INPUT_ERRORS, each cut to
        MAX_PROBLEM_CHARS (a message can quote the whole offending value); empty when valid or no
        schema.

        The compiled validator decides. A rejection is explained by the reference implementation
        (jsonschema, imported on this path only), which produces errors lazily, so a huge wrong list
        costs its first few errors only: the compiled one builds every error before returning any."""
        if self.inputs_schema is None or self._validator.is_valid(inputs):
            return []
        errors = islice(self._explainer.iter_errors(inputs), MAX_INPUT_ERRORS)
        problems = [_cut(f"inputs{''.join(f'[{p!r}]' for p in e.path)}: {e.message}") for e in errors]
        if not problems:  # the two disagree (a regex dialect, say): the compiled one's first error
            try:
                self._validator.validate(inputs)
            except jsonschema_rs.ValidationError as exc:
                path = "".join(f"[{p!r}]" for p in exc.instance_path)
                problems = [_cut(f"inputs{path}: {exc.message}")]
        return problems or ["inputs: rejected by the schema"]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 3] + "..."


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    workflows: dict[str, WorkflowEntry]

    def entry(self, key: str) -> WorkflowEntry:
        """The entry of `key`, for operator commands; NotFoundError names the keys there are."""
        try:
            return self.workflows[key]
        except KeyError:
            raise NotFoundError(
                f"no workflow {key!r} in the registry", fix=f"Use one of: {', '.join(self.workflows)}."
            ) from None


def load_registry(path: Path) -> Registry:
    try:
        return Registry.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"workflow registry {path} not found",
            fix="Run n8nctl from the project folder or set BRIDGE_REGISTRY_PATH.",
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"workflow registry {path} is invalid",
            why=f"{where}: {first['msg']}",
            fix="Fix the entry; see docs/CONTRACTS.md for the registry format.",
        ) from None
