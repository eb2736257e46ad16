"""Checks every request passes before the bridge acts: body limits, signatures, ownership, policy."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import BaseModel, ValidationError

from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.models import JobRequest
from n8nctl.bridge.service import Bridge
from n8nctl.registry import WorkflowEntry
from n8nctl.settings import Settings
from n8nctl.signing import SignatureError, verify
from n8nctl.store.schema import Row

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("PAYLOAD_TOO_LARGE", f"request body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("PAYLOAD_TOO_LARGE", f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError("MALFORMED_JSON", "request body is not valid JSON") from None


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            "VALIDATION_ERROR",
            "request body does not match the contract",
            detail=validation_detail(exc.errors()),
        ) from None


def validation_detail(errors: Any) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in list(errors)[:10]]


def verify_signed(bridge: Bridge, who: str, secrets: tuple[str, ...], request: Request, raw: bytes) -> None:
    if not any(secrets):
        raise ApiError("UNKNOWN_CLIENT", f"no secret is configured for {who}")
    try:
        verified = verify(secrets, request.headers, raw)
    except SignatureError as exc:
        raise ApiError(exc.code, str(exc)) from None
    if bridge.replays.seen(f"{who}:{verified.msg_id}"):
        raise ApiError("SIGNATURE_REPLAYED", "this webhook-id was already used; sign each request anew")


def authenticate_client(bridge: Bridge, client_id: str, request: Request, raw: bytes) -> None:
    secrets = bridge.settings.client_secrets.get(client_id)
    if not secrets:
        raise ApiError("UNKNOWN_CLIENT", "unknown client: name it in X-Client-Id and sign with its secret")
    verify_signed(bridge, f"client:{client_id}", secrets, request, raw)


async def own_job(
    bridge: Bridge, request: Request, job_id: str, raw: bytes, *, client_id: str | None = None
) -> Row:
    """Authenticate the caller and return its job; another client's job is indistinguishable from none."""
    client_id = client_id if client_id is not None else request.headers.get("x-client-id", "")
    authenticate_client(bridge, client_id, request, raw)
    job = await asyncio.to_thread(bridge.store.get_job, job_id)
    if job is None or job["client_id"] != client_id:
        raise ApiError("JOB_NOT_FOUND", f"no job {job_id} for client {client_id}")
    return job


def max_timeout(settings: Settings, entry: WorkflowEntry) -> int:
    return min(entry.max_timeout_seconds, settings.bridge_max_timeout_seconds)


async def admit(bridge: Bridge, job: JobRequest) -> WorkflowEntry:
    """Every policy check on a well-formed, authenticated request; raises ApiError on the first failure."""
    entry = bridge.registry.workflows.get(job.workflow_key)
    if entry is None:
        raise ApiError(
            "UNKNOWN_WORKFLOW",
            f"workflow_key {job.workflow_key!r} is not in the registry",
            detail={"known": sorted(bridge.registry.workflows)},
        )
    if not entry.enabled:
        raise ApiError("WORKFLOW_DISABLED", f"workflow {job.workflow_key} is disabled in the registry")
    if not entry.allows(job.client_id):
        raise ApiError("WORKFLOW_NOT_ALLOWED", f"client {job.client_id} may not run {job.workflow_key}")
    killed_all, killed = await bridge.killed()
    if killed_all:
        raise ApiError(
            "N8N_KILLED",
            "the kill-switch for all workflows is on; retry after it is revived",
            headers={"Retry-After": "60"},
        )
    if job.workflow_key in killed:
        raise ApiError("WORKFLOW_KILLED", f"workflow {job.workflow_key} is stopped by the kill-switch")
    limit = max_timeout(bridge.settings, entry)
    if job.timeout_seconds > limit:
        raise ApiError(
            "TIMEOUT_TOO_LARGE",
            f"timeout_seconds {job.timeout_seconds} is over the maximum {limit}",
            detail={"max_timeout_seconds": limit},
        )
    if problems := entry.input_errors(job.inputs):
        raise ApiError("INPUTS_INVALID", f"inputs do not match {job.workflow_key}'s schema", detail=problems)
    url = urlsplit(str(job.callback_url))
    if url.scheme != "https" and (url.hostname or "").lower() not in bridge.settings.http_callback_hosts:
        raise ApiError(
            "CALLBACK_URL_NOT_ALLOWED",
            f"callback_url must be https (plain http only for {sorted(bridge.settings.http_callback_hosts)})",
        )
    return entry


def user_id(metadata: dict[str, Any]) -> str | None:
    user = metadata.get("user_id")
    return str(user)[:128] if user is not None else None
