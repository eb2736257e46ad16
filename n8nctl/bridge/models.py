"""Request and response bodies of the job contract (DESIGN.md section 4). Field names must not drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "running", "success", "failed", "cancelled"]
MAX_JOB_ID = 128
MAX_CLIENT_ID = 64


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID, pattern=r"^[A-Za-z0-9._:-]+$")
    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID)
    workflow_key: str = Field(min_length=1, max_length=64)
    inputs: dict[str, Any] = Field(default_factory=dict)
    callback_url: AnyHttpUrl
    priority: int = Field(default=5, ge=1, le=10, description="10 is the most urgent")
    timeout_seconds: int = Field(default=300, ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class CallbackState(BaseModel):
    state: Literal["pending", "delivered", "dead", "stopped"]
    webhook_id: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class JobResponse(BaseModel):
    job_id: str
    status: JobStatus
    message: str
    accepted_at: datetime
    estimated_completion: datetime | None


class JobView(JobResponse):
    client_id: str
    workflow_key: str
    priority: int
    timeout_seconds: int
    deadline_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    execution_id: str | None
    error_code: str | None
    error_message: str | None
    outputs: dict[str, Any] | None
    callback: CallbackState | None


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID)
    reason: str | None = Field(default=None, max_length=1000)


class AuditEntry(BaseModel):
    timestamp: AwareDatetime | None = None
    action: str = Field(min_length=1, max_length=64)
    node_name: str | None = Field(default=None, max_length=255)
    details: Any = None
    duration_ms: int | None = Field(default=None, ge=0)


class N8nResult(BaseModel):
    """What the workflow posts to /v1/callbacks/n8n."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    job_id: str = Field(min_length=1, max_length=MAX_JOB_ID)
    execution_id: str | None = Field(default=None, max_length=64)
    status: Literal["success", "failed"]
    outputs: dict[str, Any] | None = None
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    audit: list[AuditEntry] = Field(default_factory=list, max_length=1000)
    # with a zone: the store keeps UTC, and a time without one names no moment
    started_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None


class ErrorBody(BaseModel):
    error_code: str
    message: str
    detail: Any = None
