"""A stand-in for n8n's production webhooks, run as its own process: `python fake_n8n.py PORT`.

POST /webhook/<path> checks the X-Bridge-Token header (403 "Authorization data is wrong!" otherwise,
like n8n), answers 202 {"executionId": "<n>"}, then posts the workflow's result to the payload's
`callback_url`, signed with FAKE_N8N_CALLBACK_SECRET. What the workflow does is decided by
inputs.stream_id, so each test picks its path:

  "reject..."  -> failed, error_code INPUT_REJECTED
  "hold..."    -> the result waits for POST /_control/release/<job_id> (which answers the bridge's reply)
  anything else -> success, outputs {"stream_id", "comment_count"}

A result the bridge does not take (down, or a 5xx) is posted again after 2, 5, 15 and 30 s, like the
real templates.

GET /_jobs/<job_id> shows what n8n saw of a job: triggers, execution_id, the result and the bridge's reply.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from n8nctl.signing import sign_headers

TOKEN = os.environ["FAKE_N8N_TOKEN"]
CALLBACK_SECRET = os.environ["FAKE_N8N_CALLBACK_SECRET"]

RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)
execution_ids = itertools.count(1001)
jobs: dict[str, dict[str, Any]] = {}


def now() -> str:
    return datetime.now(UTC).isoformat()


def run_workflow(path: str, payload: dict[str, Any], execution_id: str) -> dict[str, Any]:
    """The result n8n would post back: deterministic in the inputs."""
    inputs, started = payload["inputs"], now()
    audit = [
        {"timestamp": now(), "action": "received", "node_name": "Webhook", "details": {"path": path}},
        {
            "timestamp": now(),
            "action": "scored",
            "node_name": "Score comments",
            "details": {"count": len(inputs.get("comments", []))},
            "duration_ms": 7,
        },
    ]
    result: dict[str, Any] = {
        "job_id": payload["job_id"],
        "execution_id": execution_id,
        "status": "success",
        "outputs": {"stream_id": inputs.get("stream_id"), "comment_count": len(inputs.get("comments", []))},
        "error_code": None,
        "error_message": None,
        "audit": audit,
        "started_at": started,
        "completed_at": now(),
    }
    if str(inputs.get("stream_id", "")).startswith("reject"):
        result.update(
            status="failed",
            outputs=None,
            error_code="INPUT_REJECTED",
            error_message="stream is not live",
        )
    return result


async def post_result(job_id: str, retry_delays: tuple[float, ...] = ()) -> Any:
    """Post the signed result; on a network error or a 5xx retry after each of `retry_delays`, signed
    anew each time, as the real templates do (docs/WORKFLOWS.md: 2, 5, 15, 30 s)."""
    job = jobs[job_id]
    body = json.dumps(job["result"]).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        for delay in (*retry_delays, None):
            headers = {**sign_headers(CALLBACK_SECRET, body), "content-type": "application/json"}
            try:
                response = await client.post(job["callback_url"], content=body, headers=headers)
                job["reply"] = {"status_code": response.status_code, "body": response.json()}
                if response.status_code < 500:
                    break
            except (httpx.HTTPError, ValueError) as exc:
                job["reply"] = {"status_code": None, "body": repr(exc)}
            if delay is not None:
                await asyncio.sleep(delay)
    return job["reply"]


async def webhook(request: Request) -> JSONResponse:
    if not hmac.compare_digest(request.headers.get("x-bridge-token", ""), TOKEN):
        return JSONResponse({"code": 403, "message": "Authorization data is wrong!"}, status_code=403)
    payload = await request.json()
    execution_id = str(next(execution_ids))
    job = jobs.setdefault(payload["job_id"], {"triggers": 0})
    job.update(
        triggers=job["triggers"] + 1,
        execution_id=execution_id,
        callback_url=payload["callback_url"],
        result=run_workflow(request.path_params["path"], payload, execution_id),
    )
    held = str(payload["inputs"].get("stream_id", "")).startswith("hold")
    task = None if held else BackgroundTask(post_result, payload["job_id"], RETRY_DELAYS)
    return JSONResponse({"executionId": execution_id}, status_code=202, background=task)


async def release(request: Request) -> JSONResponse:
    return JSONResponse(await post_result(request.path_params["job_id"]))


async def show(request: Request) -> JSONResponse:
    return JSONResponse(jobs.get(request.path_params["job_id"], {"triggers": 0}))


async def readiness(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/webhook/{path:path}", webhook, methods=["POST"]),
        Route("/_control/release/{job_id}", release, methods=["POST"]),
        Route("/_jobs/{job_id}", show),
        Route("/healthz/readiness", readiness),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
