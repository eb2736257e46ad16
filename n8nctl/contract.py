"""Pure helpers for the job contract: canonical hashing and the FlowBiz callback body."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

AUDIT_FIELDS = ("timestamp", "action", "node_name", "details", "duration_ms")
# The error_code values the bridge itself gives a job (docs/CONTRACTS.md section 7.2; a test checks
# the section lists each). Any other code on a failed job is the workflow's own.
RESULT_LOST = "RESULT_LOST"  # reconciliation: n8n's execution ended, no result reached the bridge
JOB_ERROR_CODES = ("TIMEOUT", "CANCELLED", "WORKFLOW_KILLED", "N8N_KILLED", RESULT_LOST)
# error_message of jobs the kill-switch ends (error_code WORKFLOW_KILLED / N8N_KILLED)
WORKFLOW_KILLED_MESSAGE = "the workflow was stopped by the kill-switch before this job ran"
N8N_KILLED_MESSAGE = "n8n was stopped by the kill-switch while this job ran"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def request_hash(body: dict[str, Any]) -> str:
    """Same logical request -> same hash, whatever the key order or whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_entry(row: dict[str, Any]) -> dict[str, Any]:
    """An audit_events row in the contract's shape."""
    return {
        "timestamp": iso(row["at"]),
        "action": row["action"],
        "node_name": row["node_name"] or row["source"],
        "details": row["details"] or {},
        "duration_ms": row["duration_ms"],
    }


def callback_body(job: dict[str, Any], audit: list[dict[str, Any]]) -> str:
    """The exact bytes FlowBiz receives: stored once, identical on every retry."""
    return json.dumps(
        {
            "job_id": job["job_id"],
            "status": job["status"],
            "outputs": job["outputs"] or {},
            "error_code": job["error_code"],
            "error_message": job["error_message"],
            "audit": [audit_entry(row) for row in audit],
            "started_at": iso(job["started_at"]),
            "completed_at": iso(job["completed_at"]),
            "execution_id": job["execution_id"],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
