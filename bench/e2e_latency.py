"""End-to-end overhead: what the bridge adds to a job's latency (DESIGN.md 6: p50 < 15 ms).

One tiktok_live_helper job at a time through the bridge of a native stack: from sending
POST /v1/jobs to FlowBiz's receiver holding the verified callback, minus the execution time n8n
reports for that job (GET /api/v1/executions/{id}: stoppedAt - startedAt). What is left is the
bridge (intake, claim, dispatch, recording the result, the callback outbox) plus what n8n spends
outside its execution record (taking the webhook request before the execution starts). The
baseline, interleaved job by job: the same job straight at n8n's webhook, its result posted to a
receiver, measured the same way; the bridge's own share is the difference of the medians. The
part before n8n's execution started and the part after it stopped are reported too (wall clock,
same machine).

    .venv/bin/python bench/e2e_latency.py [--jobs 100]   (or as a phase of bench/drain.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_stack import (
    KEY,
    Receiver,
    Stack,
    bridge_process,
    direct_job,
    load,
    machine,
    n8n_webhook,
    native_stack,
    quantile,
    quiet,
    receiving,
    signed_jobs,
)


def _wall(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _through_bridge(
    http: httpx.AsyncClient, url: str, receiver: Receiver, request: tuple[str, dict[str, str], bytes]
) -> tuple[str, float, float, float]:
    """One signed job through the bridge: (job_id, sent, 202 received, verified callback received)."""
    job_id, headers, body = request
    arrived = receiver.expect(job_id)
    sent = time.monotonic()
    answer = await http.post(f"{url}/v1/jobs", content=body, headers=headers)
    if answer.status_code != 202:
        raise SystemExit(f"the bridge answered {answer.status_code}: {answer.text[:200]}")
    accepted = time.monotonic()
    return job_id, sent, accepted, await asyncio.wait_for(arrived, 60)


async def _straight_at_n8n(
    http: httpx.AsyncClient, stack: Stack, receiver: Receiver
) -> tuple[str, float, float, float]:
    """The same job straight at n8n's webhook, its result posted to `receiver`: the baseline."""
    webhook, token = n8n_webhook(stack)
    job_id = f"e2e-direct-{uuid.uuid4().hex}"
    arrived = receiver.expect(job_id)
    sent = time.monotonic()
    answer = await http.post(webhook, json=direct_job(job_id, receiver.url), headers=token)
    if answer.status_code >= 300:
        raise SystemExit(f"n8n answered {answer.status_code}: {answer.text[:200]}")
    accepted = time.monotonic()
    return job_id, sent, accepted, await asyncio.wait_for(arrived, 60)


async def overhead(stack: Stack, url: str, jobs: int) -> dict[str, Any]:
    """`jobs` jobs one at a time through the bridge, each followed by one straight at n8n."""
    secret = stack.settings.bridge_callback_signing_secret.get_secret_value()
    offset = time.time() - time.monotonic()  # monotonic -> wall clock, to compare with n8n's stamps
    warm = 5  # the first few of each warm the connections and n8n's caches up
    load_before = load()
    bridged, direct = [], []
    async with (
        receiving(secret) as flowbiz,
        receiving() as results,
        httpx.AsyncClient(timeout=30) as http,
    ):
        for request in signed_jobs(stack, jobs + warm, flowbiz.url, "e2e"):
            bridged.append(await _through_bridge(http, url, flowbiz, request))
            direct.append(await _straight_at_n8n(http, stack, results))
        api = {"X-N8N-API-KEY": stack.settings.n8n_api_key_value()}

        async def finished(where: str) -> dict[str, Any]:
            """The execution once n8n has stamped its end (it posts the result before it saves that)."""
            deadline = time.monotonic() + 10
            while True:
                execution = (await http.get(where, headers=api)).json()
                if execution.get("stoppedAt") or time.monotonic() > deadline:
                    return execution
                await asyncio.sleep(0.1)

        async def rows(
            samples: list[tuple[str, float, float, float]], receiver: Receiver
        ) -> list[dict[str, Any]]:
            out = []
            for job_id, sent, accepted, arrived in samples[warm:]:
                result = receiver.arrivals[job_id][1]
                where = f"{stack.settings.n8n_url}/api/v1/executions/{result['execution_id']}"
                execution = await finished(where)
                started, stopped = _wall(execution["startedAt"]), _wall(execution["stoppedAt"])
                out.append(
                    {
                        "overhead": arrived - sent - (stopped - started),
                        "e2e": arrived - sent,
                        "answer": accepted - sent,
                        "execution": stopped - started,
                        "before_n8n": started - (sent + offset),
                        "after_n8n": (arrived + offset) - stopped,
                        "status": result["status"],
                    }
                )
            return out

        through, straight = await rows(bridged, flowbiz), await rows(direct, results)

    def ms(table: list[dict[str, Any]], name: str, q: float) -> float:
        return round(quantile([row[name] for row in table], q) * 1000, 1)

    bridge_p50, n8n_p50 = ms(through, "overhead", 0.5), ms(straight, "overhead", 0.5)
    return {
        "jobs": len(through),
        "failed": sum(row["status"] != "success" for row in through),
        "bad_signatures": flowbiz.rejected,
        "overhead_p50_ms": bridge_p50,
        "overhead_p95_ms": ms(through, "overhead", 0.95),
        "e2e_p50_ms": ms(through, "e2e", 0.5),
        "execution_p50_ms": ms(through, "execution", 0.5),
        "intake_p50_ms": ms(through, "answer", 0.5),
        "before_n8n_p50_ms": ms(through, "before_n8n", 0.5),
        "after_n8n_p50_ms": ms(through, "after_n8n", 0.5),
        "direct_overhead_p50_ms": n8n_p50,
        "direct_overhead_p95_ms": ms(straight, "overhead", 0.95),
        "direct_before_n8n_p50_ms": ms(straight, "before_n8n", 0.5),
        "direct_execution_p50_ms": ms(straight, "execution", 0.5),
        "bridge_share_p50_ms": round(bridge_p50 - n8n_p50, 1),
        "load": [load_before, load()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with (
        native_stack("e2elat", workflows={KEY: {"max_concurrency": 16}}) as stack,
        bridge_process(stack) as (url, _),
    ):
        quiet()
        result = asyncio.run(overhead(stack, url, args.jobs))
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
