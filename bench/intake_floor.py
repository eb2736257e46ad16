"""The floor under the bridge's intake: POST /v1/jobs's steps with the least Python this benchmark's
author could write, to tell the bridge's own cost from what any Python intake on uvicorn pays.
Not the bridge, and not for production: it has no pydantic model, registry, metrics, OpenAPI or
error bodies, and trusts the benchmark's requests to be well formed.

Per request, as the bridge does: the body read in full; the Standard Webhooks signature (HMAC-SHA256,
timestamp tolerance) checked; the webhook-id remembered (replay); a GCRA rate limit; the JSON parsed;
the job's fields checked and its `inputs` validated by jsonschema-rs against the registry's schema; the
canonical request hash; the row stored by a group commit in one thread (SQLite WAL,
`synchronous=FULL`: fsync'd before the 202); a 202 with the job's JSON.

    FLOOR_SECRET=whsec_... FLOOR_DATABASE=/tmp/f.db uvicorn --app-dir bench intake_floor:app
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs

KEY = base64.b64decode(os.environ["FLOOR_SECRET"].removeprefix("whsec_"))
REGISTRY = json.loads((Path(__file__).resolve().parent.parent / "workflows/registry.json").read_text())
VALIDATORS = {
    key: jsonschema_rs.validator_for(entry["inputs_schema"])
    for key, entry in REGISTRY["workflows"].items()
    if entry.get("inputs_schema")
}
INSERT = "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
seen: set[bytes] = set()  # never expired: a run of the benchmark is short
rate_at: dict[str, float] = {}
queue: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
wake = threading.Condition()


def committer(loop: asyncio.AbstractEventLoop) -> None:
    """One thread: everything queued so far in one fsync'd transaction, then the waiters resolved."""
    db = sqlite3.connect(os.environ["FLOOR_DATABASE"], isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS jobs (job_id PRIMARY KEY, client_id, workflow_key, inputs, "
               "callback_url, request_hash, accepted_at)")  # fmt: skip
    while True:
        with wake:
            while not queue:
                wake.wait()
            batch = queue[:]
            del queue[:]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, [row for row, _ in batch])
        db.execute("COMMIT")
        loop.call_soon_threadsafe(_resolve, [future for _, future in batch])


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        future.set_result(None)


def _empty(status: int) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        threading.Thread(target=committer, args=(asyncio.get_running_loop(),), daemon=True).start()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        return
    if scope["path"] != "/v1/jobs":  # the benchmark's health probe
        await send(_empty(200))
        await send({"type": "http.response.body"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = dict(scope["headers"])
    msg_id, stamp = headers[b"webhook-id"], headers[b"webhook-timestamp"]
    mac = hmac.digest(KEY, msg_id + b"." + stamp + b"." + body, "sha256")
    offered = [
        base64.b64decode(part[3:]) for part in headers[b"webhook-signature"].split() if part[:3] == b"v1,"
    ]
    now = time.time()
    fine = abs(now - int(stamp)) <= 300 and any(hmac.compare_digest(mac, o) for o in offered)
    if not fine or msg_id in seen:
        await send(_empty(401))
        await send({"type": "http.response.body"})
        return
    seen.add(msg_id)
    job = json.loads(body)
    client, key = job["client_id"], job["workflow_key"]
    due = max(rate_at.get(client, now), now)  # GCRA, as bridge/ratelimit.py, at the bench's 1,000,000/s
    if due - now > 1.0:
        await send(_empty(429))
        await send({"type": "http.response.body"})
        return
    rate_at[client] = due + 1e-6
    entry = REGISTRY["workflows"].get(key)
    inputs, url = job["inputs"], job["callback_url"]
    if (
        entry is None
        or not isinstance(job["job_id"], str)
        or not isinstance(inputs, dict)
        or not (key in VALIDATORS and VALIDATORS[key].is_valid(inputs))
        or not url.startswith(("http://", "https://"))
    ):
        await send(_empty(422))
        await send({"type": "http.response.body"})
        return
    fingerprint = hashlib.sha256(json.dumps(job, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    accepted = datetime.now(UTC).isoformat()
    row = (job["job_id"], client, key, json.dumps(inputs), url, fingerprint, accepted)
    future = asyncio.get_running_loop().create_future()
    with wake:
        queue.append((row, future))
        wake.notify()
    await future
    answer = json.dumps({"job_id": job["job_id"], "status": "pending", "accepted_at": accepted}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
