"""A stand-in for n8n's production webhooks, run as its own process: `python fake_n8n.py PORT`.

POST /webhook/<path> checks the X-Bridge-Token header (403 "Authorization data is wrong!" otherwise,
like n8n), answers 202 {"executionId": "<n>"}, then posts the workflow's result to the payload's
`callback_url`, signed with FAKE_N8N_CALLBACK_SECRET. What the workflow does is decided by
inputs.stream_id, so each test picks its path:

  "reject..."  -> failed, error_code INPUT_REJECTED
  "hold..."    -> the result waits for POST /_control/release/<job_id> (which answers the bridge's reply)
  "slow-S..."  -> the result is posted after S seconds of work
  "crash-S..." -> after S seconds the execution is `crashed` and posts nothing (a worker killed
                  mid-execution, as n8n records it)
  "twice..."   -> n8n runs the webhook call twice (a known n8n failure): two executions, two results
  anything else -> success, outputs {"stream_id", "comment_count"}

A result the bridge does not take (down, or a 5xx) is posted again after 2, 5, 15 and 30 s, like the
real templates (FAKE_N8N_RETRY_DELAYS overrides them); the execution then ends `success` when the
bridge took it, else `error`, as n8n's would after its HTTP Request node failed.

The public API (X-N8N-API-KEY must be FAKE_N8N_API_KEY when that is set): GET /api/v1/executions/<id>
answers the execution's `status` (404 for an id it never gave), POST /api/v1/executions/<id>/stop
cancels it.

GET /_jobs/<job_id> shows what n8n saw of a job: triggers, execution_id, the result and the bridge's
reply. GET /_stats counts executions by status and the bridge's replies to results by `recorded`,
and lists every trigger as [job_id, webhook path, Unix time].
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import os
import sys
import time
from collections import Counter
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

API_KEY = os.environ.get("FAKE_N8N_API_KEY", "")
RETRY_DELAYS = tuple(float(d) for d in os.environ.get("FAKE_N8N_RETRY_DELAYS", "2,5,15,30").split(","))
execution_ids = itertools.count(1001)
jobs: dict[str, dict[str, Any]] = {}
executions: dict[str, str] = {}  # execution id -> n8n's status
replies: Counter[str] = Counter()  # what the bridge answered to each result, by `recorded`
triggers: list[tuple[str, str, float]] = []


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


async def post_result(
    job_id: str, retry_delays: tuple[float, ...] = (), result: dict[str, Any] | None = None
) -> Any:
    """Post the signed result; on a network error or a 5xx retry after each of `retry_delays`, signed
    anew each time, as the real templates do (docs/WORKFLOWS.md: 2, 5, 15, 30 s). The execution
    ends `success` if the bridge took it, else `error`."""
    job = jobs[job_id]
    result = result or job["result"]
    body = json.dumps(result).encode()
    reply: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for delay in (*retry_delays, None):
            headers = {**sign_headers(CALLBACK_SECRET, body), "content-type": "application/json"}
            try:
                response = await client.post(job["callback_url"], content=body, headers=headers)
                reply = {"status_code": response.status_code, "body": response.json()}
                if response.status_code < 500:
                    break
            except (httpx.HTTPError, ValueError) as exc:
                reply = {"status_code": None, "body": repr(exc)}
            if delay is not None:
                await asyncio.sleep(delay)
    job["reply"] = reply  # the last execution's, for /_jobs (a job run twice has two)
    taken = reply["status_code"] is not None and reply["status_code"] < 500
    executions[result["execution_id"]] = "success" if taken else "error"
    if taken:
        replies[reply["body"].get("recorded", "?")] += 1
    return reply


async def run(job_id: str, mode: str, result: dict[str, Any]) -> None:
    """The execution's work (see the module's docstring for the modes), then its result."""
    seconds = float(mode.split("-")[1]) if mode.startswith(("slow-", "crash-")) else 0.0
    await asyncio.sleep(seconds)
    if mode.startswith("crash-"):
        executions[result["execution_id"]] = "crashed"
        return
    await post_result(job_id, RETRY_DELAYS, result)


async def webhook(request: Request) -> JSONResponse:
    if not hmac.compare_digest(request.headers.get("x-bridge-token", ""), TOKEN):
        return JSONResponse({"code": 403, "message": "Authorization data is wrong!"}, status_code=403)
    payload = await request.json()
    execution_id = str(next(execution_ids))
    executions[execution_id] = "running"
    triggers.append((payload["job_id"], request.path_params["path"], time.time()))
    job = jobs.setdefault(payload["job_id"], {"triggers": 0})
    result = run_workflow(request.path_params["path"], payload, execution_id)
    job.update(
        triggers=job["triggers"] + 1,
        execution_id=execution_id,
        callback_url=payload["callback_url"],
        result=result,
    )
    mode = str(payload["inputs"].get("stream_id", ""))
    if mode.startswith("twice"):  # the same call run again as a second execution
        again = {**result, "execution_id": str(next(execution_ids))}
        executions[again["execution_id"]] = "running"
        asyncio.get_running_loop().create_task(run(payload["job_id"], "", again))
    task = None if mode.startswith("hold") else BackgroundTask(run, payload["job_id"], mode, result)
    return JSONResponse({"executionId": execution_id}, status_code=202, background=task)


def api_refused(request: Request) -> JSONResponse | None:
    if API_KEY and not hmac.compare_digest(request.headers.get("x-n8n-api-key", ""), API_KEY):
        return JSONResponse({"message": "unauthorized"}, status_code=401)
    return None


async def execution(request: Request) -> JSONResponse:
    execution_id = request.path_params["id"]
    if refused := api_refused(request):
        return refused
    if execution_id not in executions:
        return JSONResponse({"message": "Not Found"}, status_code=404)
    if request.method == "POST":  # .../stop
        executions[execution_id] = "canceled"
    return JSONResponse({"id": execution_id, "status": executions[execution_id]})


async def stats(_: Request) -> JSONResponse:
    return JSONResponse(
        {"executions": dict(Counter(executions.values())), "replies": dict(replies), "triggers": triggers}
    )


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
        Route("/_stats", stats),
        Route("/api/v1/executions/{id}", execution),
        Route("/api/v1/executions/{id}/stop", execution, methods=["POST"]),
        Route("/healthz/readiness", readiness),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
