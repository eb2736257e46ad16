"""A burst far above what n8n can execute: straight at n8n's webhook, then through the bridge, in one run.

Needs this project's stack running without a rate limit in the way (the bridge must take the burst):

    BRIDGE_RATE_LIMIT=100000/minute BRIDGE_ENVIRONMENT=development ./scripts/n8nctl up
    .venv/bin/python bench/burst.py [--jobs 300] [--concurrency 150]

Straight at n8n: `--jobs` POSTs to the tiktok_live_helper webhook, `--concurrency` at a time, 10 s client
timeout (what a caller without the bridge would see). Through the bridge: the same jobs, signed, as
fast; then waits until FlowBiz's receiver has every callback, and reads from the job store how many
ran in n8n at once (the registry's max_concurrency is the cap). Goal (DESIGN.md 6): zero jobs lost or
failed, the cap never exceeded, every callback delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from n8nctl.registry import load_registry  # noqa: E402
from n8nctl.settings import Settings, load_settings  # noqa: E402
from n8nctl.signing import sign_headers  # noqa: E402
from n8nctl.store import Store  # noqa: E402

KEY = "tiktok_live_helper"
INPUTS = {"stream_id": "burst", "comments": [{"user": "ana", "text": "how much is shipping?"}]}


class Receiver:
    """Counts callbacks by job_id; answers 200 to anything (signatures are checked by the tests)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/cb"
        self.jobs: dict[str, str] = {}
        app = Starlette(routes=[Route("/cb", self._receive, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.05)

    async def _receive(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.jobs[body["job_id"]] = body.get("status", "?")
        return JSONResponse({"ok": True})


async def fire(requests: list[tuple[str, dict[str, str], bytes]], concurrency: int) -> list[int | str]:
    """POST every (url, headers, body), `concurrency` at a time; each answer's status or error type."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(url: str, headers: dict[str, str], body: bytes) -> int | str:
            async with limit:
                try:
                    return (await client.post(url, content=body, headers=headers)).status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__

        return await asyncio.gather(*(one(*request) for request in requests))


def summary(answers: list[int | str]) -> str:
    counts: dict[str, int] = {}
    for answer in answers:
        counts[str(answer)] = counts.get(str(answer), 0) + 1
    return ", ".join(f"{key}: {value}" for key, value in sorted(counts.items()))


def max_overlap(store: Store, job_ids: set[str]) -> int:
    """How many of these jobs were running in n8n at the same moment, from dispatch to result."""
    events = []
    for job_id in job_ids:
        job = store.get_job(job_id)
        if job and job["dispatched_at"] and job["completed_at"]:
            events += [(job["dispatched_at"], 1), (job["completed_at"], -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda event: (event[0], event[1])):
        running += step
        peak = max(peak, running)
    return peak


def n8n_idle(settings: Settings, timeout: float = 600) -> None:
    """Wait until n8n runs no execution (public API), e.g. the backlog of the direct burst."""
    headers = {"X-N8N-API-KEY": settings.n8n_api_key_value()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            httpx.get(
                f"{settings.n8n_url}/api/v1/executions",
                params={"status": status, "limit": 1},
                headers=headers,
                timeout=10,
            ).json()["data"]
            for status in ("running", "new")
        ]
        if not any(busy):
            return
        time.sleep(1)
    raise SystemExit(f"n8n still busy after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=150)
    args = parser.parse_args()
    settings = load_settings()
    entry = load_registry(settings.registry_path).workflows[KEY]
    client_id, _, secret = settings.bridge_client_secrets.get_secret_value().split(",")[0].partition(":")
    receiver = Receiver(int(settings.bridge_port) + 1000)
    token = {settings.bridge_n8n_webhook_header: settings.bridge_n8n_webhook_token.get_secret_value()}

    direct = []
    for _ in range(args.jobs):
        body = {
            "job_id": f"direct-{uuid.uuid4().hex}",
            "client_id": client_id,
            "workflow_key": KEY,
            "inputs": INPUTS,
            "metadata": {},
            "callback_url": receiver.url,
        }
        headers = {**token, "content-type": "application/json"}
        direct.append(
            (f"{settings.n8n_url}/webhook/{entry.webhook_path}", headers, json.dumps(body).encode())
        )
    started = time.monotonic()
    answers = asyncio.run(fire(direct, args.concurrency))
    print(f"straight at n8n: {args.jobs} jobs in {time.monotonic() - started:.1f} s -> {summary(answers)}")
    failed_direct = sum(1 for answer in answers if answer != 202)
    n8n_idle(settings)  # what n8n took of the direct burst must not slow the bridge's phase

    through = []
    for _ in range(args.jobs):
        body = json.dumps(
            {
                "job_id": f"burst-{uuid.uuid4().hex}",
                "client_id": client_id,
                "workflow_key": KEY,
                "inputs": INPUTS,
                "callback_url": receiver.url,
            }
        ).encode()
        headers = {**sign_headers(secret, body), "X-Client-Id": client_id, "content-type": "application/json"}
        through.append((f"{settings.bridge_url}/v1/jobs", headers, body))
    job_ids = {json.loads(body)["job_id"] for _, _, body in through}
    started = time.monotonic()
    answers = asyncio.run(fire(through, args.concurrency))
    accepted_in = time.monotonic() - started
    print(f"through the bridge: {args.jobs} jobs accepted in {accepted_in:.1f} s -> {summary(answers)}")
    deadline = time.monotonic() + 600
    while not job_ids <= receiver.jobs.keys() and time.monotonic() < deadline:
        time.sleep(0.2)
    drained = time.monotonic() - started
    statuses = [receiver.jobs.get(job_id, "missing") for job_id in job_ids]
    store = Store(settings.database_url)
    peak = max_overlap(store, job_ids)
    print(f"  callbacks: {summary(statuses)} after {drained:.1f} s ({args.jobs / drained:.1f} jobs/s)")
    print(f"  most jobs running in n8n at once: {peak} (cap {entry.max_concurrency})")
    lost = sum(1 for status in statuses if status != "success")
    print(
        f"goal: zero lost or failed through the bridge: {'met' if lost == 0 else f'NOT met ({lost})'}; "
        f"cap kept: {'yes' if peak <= entry.max_concurrency else 'NO'}; "
        f"straight at n8n, {failed_direct} of {args.jobs} not accepted"
    )


if __name__ == "__main__":
    main()
