"""The bridge's HTTP API: FastAPI app factory and routes. Contract in docs/CONTRACTS.md."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from n8nctl import __version__
from n8nctl.adapters.callbacks import Resolver
from n8nctl.bridge.checks import (
    admit,
    max_timeout,
    own_job,
    parse_model,
    read_body,
    read_client_request,
    user_id,
    validation_detail,
    verify_signed,
)
from n8nctl.bridge.errors import ApiError
from n8nctl.bridge.models import (
    CallbackState,
    CancelRequest,
    ErrorBody,
    JobRequest,
    JobResponse,
    JobView,
    N8nResult,
)
from n8nctl.bridge.parsing import parse_json, sized
from n8nctl.bridge.service import Bridge
from n8nctl.contract import request_hash
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.store import NewJob
from n8nctl.store.schema import Row

log = logging.getLogger("n8nctl.bridge")


def _body(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI requestBody for routes that read the raw body themselves (signatures need the bytes).
    The model's schema is collected into `schemas` for the components section."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


SIGNED = _errors(401, 500, 503)


class BridgeApi(FastAPI):
    """The bridge's app. POST /v1/jobs, the one route under load, is served by a plain Starlette app:
    FastAPI's middleware stack and request handling cost as much CPU as the whole endpoint
    (docs/PERFORMANCE.md). The route stays declared in FastAPI with the same endpoint, which gives
    it its OpenAPI entry and answers whatever the plain app does not take (another method: 405)."""

    intake: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.intake
            and scope["type"] == "http"
            and scope["path"] == "/v1/jobs"
            and scope["method"] == "POST"
        ):
            await self.intake(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    registry: Registry,
    *,
    workers: bool | None = None,
    n8n_transport: httpx.AsyncBaseTransport | None = None,
    callback_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
    operator_socket: Path | None = None,
) -> FastAPI:
    bridge = Bridge(
        settings,
        registry,
        n8n_transport=n8n_transport,
        callback_transport=callback_transport,
        resolver=resolver,
        operator_socket=operator_socket,
    )
    schemas: dict[str, Any] = {}
    body = partial(_body, schemas)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await bridge.start(workers=settings.bridge_workers if workers is None else workers)
        try:
            yield
        finally:
            await bridge.stop()

    handlers = _error_handlers(bridge)
    # No /docs or /redoc: they load scripts from public CDNs. /openapi.json is the contract.
    app = BridgeApi(
        title="n8nctl bridge",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        exception_handlers=handlers,
    )
    app.state.bridge = bridge

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobResponse,
        openapi_extra=body(JobRequest),
        responses={200: {"model": JobResponse}, **SIGNED, **_errors(400, 403, 409, 413, 422, 423, 429)},
    )
    async def submit_job(request: Request) -> Response:
        """Accept a job. 202 once it is durably stored; 200 for a repeat of an accepted request."""
        started = time.perf_counter()
        signed = await read_client_request(bridge, request, has_body=True)
        job = await signed.body(JobRequest)
        fingerprint = await sized(len(signed.raw), lambda: request_hash(job.model_dump(mode="json")))
        try:
            entry = await admit(bridge, job, size=len(signed.raw))
        except ApiError:
            stored = await asyncio.to_thread(bridge.store.get_job, job.job_id)
            if stored and stored["client_id"] == job.client_id and stored["request_hash"] == fingerprint:
                return _job_response(stored, registry, 200)  # a retry of an accepted job stays accepted
            raise
        now = datetime.now(UTC)
        row = {
            "job_id": job.job_id,
            "client_id": job.client_id,
            "workflow_key": job.workflow_key,
            "priority": job.priority,
            "timeout_seconds": job.timeout_seconds,
            "inputs": job.inputs,
            "callback_url": str(job.callback_url),
            "metadata": job.metadata,
            "user_id": user_id(job.metadata),
            "request_hash": fingerprint,
            "retention_days": entry.retention_days,
            "accepted_at": now,
            "deadline_at": now + timedelta(seconds=job.timeout_seconds),
        }
        outcome = await bridge.submit(NewJob(row))
        bridge.metrics.intake_seconds.observe(time.perf_counter() - started)
        if outcome.created:
            bridge.metrics.accepted.labels(job.workflow_key).inc()
            return _job_response(outcome.job, registry, 202)
        if outcome.job["client_id"] == job.client_id and outcome.job["request_hash"] == fingerprint:
            return _job_response(outcome.job, registry, 200)
        raise ApiError(
            "IDEMPOTENCY_CONFLICT", f"job_id {job.job_id} was already used for a different request"
        )

    app.intake = Starlette(
        routes=[Route("/v1/jobs", submit_job, methods=["POST"])], exception_handlers=handlers
    )

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses={**SIGNED, **_errors(404, 429)})
    async def get_job(job_id: str, request: Request) -> Response:
        """A job's full state, for its own client (signed GET: empty body, X-Client-Id)."""
        signed = await read_client_request(bridge, request, has_body=False)
        return _job_response(await own_job(bridge, signed.client_id, job_id), registry, 200, full=True)

    @app.get("/v1/jobs/{job_id}/status", response_model=JobView, responses={**SIGNED, **_errors(404, 429)})
    async def get_job_status(job_id: str, request: Request) -> Response:
        """Same as GET /v1/jobs/{job_id}."""
        return await get_job(job_id, request)

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        response_model=JobView,
        openapi_extra=body(CancelRequest),
        responses={**SIGNED, **_errors(400, 403, 404, 409, 413, 422, 429)},
    )
    async def cancel_job(job_id: str, request: Request) -> Response:
        """Cancel a pending or running job; n8n's execution is stopped where n8n supports it."""
        signed = await read_client_request(bridge, request, has_body=True)
        await own_job(bridge, signed.client_id, job_id)
        body = await signed.body(CancelRequest)
        changed, job = await asyncio.to_thread(
            bridge.store.cancel, job_id, reason=body.reason, actor=body.client_id
        )
        assert job is not None
        if not changed:
            raise ApiError(
                "JOB_ALREADY_FINISHED",
                f"job {job_id} is already {job['status']}",
                detail={"status": job["status"]},
            )
        bridge.metrics.finish(job["workflow_key"], "cancelled", _age(job))
        bridge.wake_dispatch.set()
        bridge.stop_execution(job)
        stored = await asyncio.to_thread(bridge.store.get_job, job_id)
        assert stored is not None
        return _job_response(stored, registry, 200, full=True)

    @app.post(
        "/v1/callbacks/n8n",
        openapi_extra=body(N8nResult),
        responses={**SIGNED, **_errors(400, 404, 413, 422)},
    )
    async def n8n_result(request: Request) -> JSONResponse:
        """A workflow's result, signed with BRIDGE_N8N_CALLBACK_SECRET. Recorded, then forwarded."""
        raw = await read_body(request, settings.bridge_max_body_bytes)
        await verify_signed(bridge, "n8n", settings.n8n_callback_keys.live(), request, raw)
        result = await sized(len(raw), parse_model, N8nResult, await sized(len(raw), parse_json, raw))
        row = result.model_dump()
        row["audit"] = [entry.model_dump() for entry in result.audit]
        # the callback is claimed in the result's transaction and sent at once (no outbox round trip)
        recorded = await asyncio.to_thread(bridge.store.record_result, row, lease=bridge.delivery_lease)
        bridge.metrics.results.labels(result.status, recorded.outcome).inc()
        if recorded.outcome == "unknown":
            raise ApiError("JOB_NOT_FOUND", f"no job {result.job_id}")
        if recorded.job is not None and recorded.delivery is not None:
            bridge.metrics.finish(recorded.job["workflow_key"], result.status, _age(recorded.job))
            bridge.deliver(recorded.delivery)
            bridge.wake_dispatch.set()
        return JSONResponse({"job_id": result.job_id, "recorded": recorded.outcome})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", responses=_errors(503))
    async def readyz() -> JSONResponse:
        """Ready when the store (and the shared Redis, when configured) answers; n8n is reported, not
        required (jobs queue while it is down)."""
        try:
            await asyncio.to_thread(bridge.store.ping)
        except OperationalError:
            return ApiError("NOT_READY", "the job store does not answer", detail={"store": False}).response()
        # with BRIDGE_REDIS_URL, a replica whose Redis does not answer refuses every signed request
        if await bridge.guards.ready() is False:
            detail = {"store": True, "redis": False}
            return ApiError("NOT_READY", "the shared Redis does not answer", detail=detail).response()
        n8n = await bridge.n8n.ready()
        return JSONResponse({"status": "ok", "store": True, "n8n": n8n})

    @app.get("/v1/meta")
    async def meta() -> dict[str, Any]:
        """Version, workflows with enabled/killed state, and limits."""
        killed_all, killed = await bridge.switches.killed()
        return {
            "version": __version__,
            "killed_all": killed_all,
            "workflows": [
                {
                    "workflow_key": key,
                    "description": e.description,
                    "enabled": e.enabled,
                    "killed": killed_all or key in killed,
                    "max_timeout_seconds": max_timeout(settings, e),
                    "max_concurrency": e.max_concurrency,
                    "has_inputs_schema": e.inputs_schema is not None,
                }
                for key, e in registry.workflows.items()
            ],
            "limits": {
                "max_body_bytes": settings.bridge_max_body_bytes,
                "rate_limit": settings.bridge_rate_limit,
                "max_timeout_seconds": settings.bridge_max_timeout_seconds,
                "signature_tolerance_seconds": 300,
            },
        }

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await asyncio.to_thread(bridge.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _age(job: Row) -> float:
    """Seconds from a job's acceptance to its completion (or to now)."""
    end = job.get("completed_at") or datetime.now(UTC)
    return float((end - job["accepted_at"]).total_seconds())


_MESSAGES = {
    "pending": "accepted; waiting for n8n",
    "running": "running in n8n",
    "success": "completed",
    "cancelled": "cancelled",
}


def _job_response(job: Row, registry: Registry, status_code: int, *, full: bool = False) -> Response:
    entry = registry.workflows.get(job["workflow_key"])
    estimate = job["completed_at"] or (
        job["accepted_at"] + timedelta(seconds=entry.expected_duration_seconds) if entry else None
    )
    failed = job["status"] == "failed"
    message = (job["error_message"] or job["error_code"] or "failed") if failed else _MESSAGES[job["status"]]
    base = {
        "job_id": job["job_id"],
        "status": job["status"],
        "message": message,
        "accepted_at": job["accepted_at"],
        "estimated_completion": estimate,
    }
    model: BaseModel = JobResponse.model_construct(**base)  # the store's values: nothing to validate
    if full:
        delivery = job.get("delivery")
        callback = (
            CallbackState(
                state=delivery["state"],
                webhook_id=delivery["message_id"],
                attempts=delivery["attempts"],
                last_status_code=delivery["last_status_code"],
                last_error=delivery["last_error"],
                next_attempt_at=delivery["next_attempt_at"] if delivery["state"] == "pending" else None,
                delivered_at=delivery["delivered_at"],
            )
            if delivery
            else None
        )
        model = JobView(
            **base,
            callback=callback,
            **{
                k: job[k]
                for k in (
                    "client_id",
                    "workflow_key",
                    "priority",
                    "timeout_seconds",
                    "deadline_at",
                    "started_at",
                    "completed_at",
                    "execution_id",
                    "error_code",
                    "error_message",
                    "outputs",
                )
            },
        )
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _error_handlers(bridge: Bridge) -> dict[Any, Any]:
    """Every failure leaves as an ApiError body, and is counted by error_code (both apps use these)."""

    def answer(error: ApiError) -> JSONResponse:
        bridge.metrics.rejected.labels(error.error_code).inc()
        return error.response()

    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return answer(exc)

    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = validation_detail(exc.errors())
        return answer(ApiError("VALIDATION_ERROR", "request does not match the contract", detail=detail))

    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return answer(ApiError("METHOD_NOT_ALLOWED", "method not allowed on this path"))
        return answer(ApiError("NOT_FOUND", "no such endpoint"))

    async def store_error(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("job store error: %s", type(exc.orig).__name__)
        return answer(
            ApiError(
                "STORE_UNAVAILABLE",
                "the job store is unavailable; retry shortly",
                headers={"Retry-After": "5"},
            )
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return answer(ApiError("INTERNAL_ERROR", "unexpected error; it is logged on the bridge"))

    return {
        ApiError: api_error,
        RequestValidationError: validation_error,
        HTTPException: http_error,
        OperationalError: store_error,
        Exception: unexpected,
    }
