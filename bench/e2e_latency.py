"""End-to-end overhead: what the bridge adds to a job's latency (DESIGN.md 6: p50 < 15 ms).

One tiktok_live_helper job at a time through the bridge of a native stack: from sending
POST /v1/jobs to FlowBiz's receiver holding the verified callback, minus the execution time n8n
reports for that job (GET /api/v1/executions/{id}: stoppedAt - startedAt). What is left is the
bridge (intake, claim, dispatch, recording the result, the callback outbox) plus the two HTTP hops
into n8n's webhook and out of it. The part before n8n's execution started and the part after it
stopped are reported too (wall clock, same machine).

    .venv/bin/python bench/e2e_latency.py [--jobs 100]   (or as a phase of bench/drain.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_stack import (
    KEY,
    Stack,
    bridge_process,
    load,
    machine,
    native_stack,
    quantile,
    receiving,
    signed_jobs,
)


def _wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def overhead(stack: Stack, url: str, jobs: int) -> dict[str, Any]:
    secret = stack.settings.bridge_callback_signing_secret.get_secret_value()
    offset = time.time() - time.monotonic()  # monotonic -> wall clock, to compare with n8n's stamps
    samples = []
    load_before = load()
    async with receiving(secret) as receiver, httpx.AsyncClient(timeout=30) as http:
        for job_id, headers, body in signed_jobs(stack, jobs + 5, receiver.url, "e2e"):
            arrived = receiver.expect(job_id)
            sent = time.monotonic()
            answer = await http.post(f"{url}/v1/jobs", content=body, headers=headers)
            if answer.status_code != 202:
                raise SystemExit(f"the bridge answered {answer.status_code}: {answer.text[:200]}")
            accepted = time.monotonic()
            callback = await asyncio.wait_for(arrived, 60)
            samples.append((job_id, sent, accepted, callback))
        headers = {"X-N8N-API-KEY": stack.settings.n8n_api_key_value()}
        rows = []
        for job_id, sent, accepted, callback in samples[5:]:  # the first few warm the connections up
            result = receiver.arrivals[job_id][1]
            execution = (
                await http.get(
                    f"{stack.settings.n8n_url}/api/v1/executions/{result['execution_id']}", headers=headers
                )
            ).json()
            started, stopped = _wall(execution["startedAt"]), _wall(execution["stoppedAt"])
            rows.append(
                {
                    "e2e": callback - sent,
                    "intake": accepted - sent,
                    "execution": stopped - started,
                    "before_n8n": started - (sent + offset),
                    "after_n8n": (callback + offset) - stopped,
                    "status": result["status"],
                }
            )

    def ms(name: str, q: float) -> float:
        return round(quantile([row[name] for row in rows], q) * 1000, 1)

    overheads = [row["e2e"] - row["execution"] for row in rows]
    return {
        "jobs": len(rows),
        "failed": sum(row["status"] != "success" for row in rows),
        "overhead_p50_ms": round(quantile(overheads, 0.5) * 1000, 1),
        "overhead_p95_ms": round(quantile(overheads, 0.95) * 1000, 1),
        "e2e_p50_ms": ms("e2e", 0.5),
        "execution_p50_ms": ms("execution", 0.5),
        "intake_p50_ms": ms("intake", 0.5),
        "before_n8n_p50_ms": ms("before_n8n", 0.5),
        "after_n8n_p50_ms": ms("after_n8n", 0.5),
        "load": [load_before, load()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with (
        native_stack("e2elat", workflows={KEY: {"max_concurrency": 16}}) as stack,
        bridge_process(stack) as url,
    ):
        result = asyncio.run(overhead(stack, url, args.jobs))
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
