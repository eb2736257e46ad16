"""Checks every request passes before the bridge acts: body limits, signatures, ownership, policy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from n8nctl.adapters.callbacks import CallbackRefused
from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.models import MAX_CLIENT_ID, MAX_JOB_ID, JobRequest
from n8nctl.bridge.parsing import parse_json, sized
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


async def read_json(request: Request, limit: int) -> tuple[bytes, Any]:
    """The raw body (for its signature) and its value under the parsing policy (bridge/parsing.py)."""
    raw = await read_body(request, limit)
    return raw, await sized(len(raw), parse_json, raw)


async def verify_signed(
    bridge: Bridge, who: str, secrets: tuple[str, ...], request: Request, raw: bytes
) -> None:
    if not any(secrets):
        raise ApiError("UNKNOWN_CLIENT", f"no secret is configured for {who}")
    try:
        verified = verify(secrets, request.headers, raw)
    except SignatureError as exc:
        raise ApiError(exc.code, str(exc)) from None
    await bridge.check_replay(who, verified.msg_id)


@dataclass(frozen=True)
class ClientRequest:
    """A FlowBiz request whose signature verified and that is within its client's rate."""

    client_id: str
    raw: bytes
    data: Any

    async def body(self, model: type[M]) -> M:
        """The body as `model`; its `client_id` must be the signing client."""
        parsed = await sized(len(self.raw), parse_model, model, self.data)
        if getattr(parsed, "client_id", None) != self.client_id:
            raise ApiError("CLIENT_MISMATCH", "client_id in the body is not the signing client")
        return parsed


async def read_client_request(bridge: Bridge, request: Request, *, has_body: bool) -> ClientRequest:
    """The one way every FlowBiz call is read: body (POST) under the parsing policy, client named
    by X-Client-Id or the body's client_id, signature, then the client's rate (reads and writes
    counted apart, so polling never uses up submissions). A GET signs the empty body."""
    raw, data = await read_json(request, bridge.settings.bridge_max_body_bytes) if has_body else (b"", None)
    named = request.headers.get("x-client-id") or (data.get("client_id") if isinstance(data, dict) else None)
    client_id = named if isinstance(named, str) and len(named) <= MAX_CLIENT_ID else ""
    keyring = bridge.settings.client_secrets.get(client_id)
    secrets = keyring.live() if keyring else ()
    if not secrets:
        raise ApiError("UNKNOWN_CLIENT", "unknown client: name it in X-Client-Id and sign with its secret")
    await verify_signed(bridge, f"client:{client_id}", secrets, request, raw)
    await bridge.check_rate(client_id, "write" if has_body else "read")
    return ClientRequest(client_id, raw, data)


async def own_job(bridge: Bridge, client_id: str, job_id: str) -> Row:
    """The client's job; another client's job is indistinguishable from none."""
    job = await asyncio.to_thread(bridge.store.get_job, job_id) if len(job_id) <= MAX_JOB_ID else None
    if job is None or job["client_id"] != client_id:
        raise ApiError("JOB_NOT_FOUND", f"no job {job_id[:MAX_JOB_ID]} for client {client_id}")
    return job


def max_timeout(settings: Settings, entry: WorkflowEntry) -> int:
    return min(entry.max_timeout_seconds, settings.bridge_max_timeout_seconds)


async def admit(bridge: Bridge, job: JobRequest, *, size: int) -> WorkflowEntry:
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
    killed_all, killed = await bridge.switches.killed()
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
    if problems := await sized(size, entry.input_errors, job.inputs):
        raise ApiError("INPUTS_INVALID", f"inputs do not match {job.workflow_key}'s schema", detail=problems)
    try:
        await bridge.callbacks.admit(str(job.callback_url))
    except CallbackRefused as exc:
        raise ApiError("CALLBACK_URL_NOT_ALLOWED", str(exc)) from None
    return entry


def user_id(metadata: dict[str, Any]) -> str | None:
    user = metadata.get("user_id")
    return str(user)[:128] if user is not None else None
