"""Every status code and error_code of docs/CONTRACTS.md, through the ASGI app (no workers)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from n8nctl.signing import sign_headers
from tests.conftest import eventually, job_body, signed


async def test_accepts_job_with_202_and_stores_it(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        response = await h.submit(body)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["job_id"] == body["job_id"]
        assert accepted["status"] == "pending"
        assert set(accepted) == {"job_id", "status", "message", "accepted_at", "estimated_completion"}
        stored = h.app.state.bridge.store.get_job(body["job_id"])
        assert stored["user_id"] == "u-42"
        assert stored["priority"] == 5 and stored["timeout_seconds"] == 300


async def test_same_request_again_is_200_with_the_stored_job(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        first = await h.submit(body)
        again = await h.submit(dict(reversed(list(body.items()))))  # key order does not matter
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["accepted_at"] == first.json()["accepted_at"]


async def test_same_job_id_different_body_is_409(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        assert (await h.submit(body)).status_code == 202
        response = await h.submit({**body, "priority": 9})
        assert response.status_code == 409
        assert response.json()["error_code"] == "IDEMPOTENCY_CONFLICT"


async def test_job_id_of_another_client_is_409_not_a_takeover(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        body = job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"})
        assert (await h.submit(body)).status_code == 202
        theirs = {**body, "client_id": "other"}
        response = await h.submit(theirs, secret=secrets.other)
        # 'other' is not allowed to run content_pipeline either, but a stored job never answers 200 to them
        assert response.status_code in (403, 409)
        assert h.app.state.bridge.store.get_job(body["job_id"])["client_id"] == "flowbiz"


async def test_hundred_concurrent_identical_submissions_make_one_job(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        responses = await asyncio.gather(*(h.submit(body) for _ in range(100)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 99 + [202]
        assert len(h.app.state.bridge.store.list_jobs(limit=1000)) == 1
        assert len(h.app.state.bridge.store.audit_for(body["job_id"])) == 1  # one "accepted" event


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "SIGNATURE_MISSING"),
        ({"webhook-signature": "v1,AAAA"}, "SIGNATURE_INVALID"),
        ({"webhook-timestamp": -400}, "SIGNATURE_EXPIRED"),  # seconds from now, when the test runs
        ({"webhook-timestamp": 400}, "SIGNATURE_EXPIRED"),
        ({"webhook-timestamp": "soon"}, "SIGNATURE_INVALID"),
    ],
)
async def test_bad_signatures_are_401(start_bridge, secrets, headers, code):
    async with start_bridge(workers=False) as h:
        raw, good = signed(secrets.client, job_body())
        if isinstance(offset := headers.get("webhook-timestamp"), int):
            headers = {"webhook-timestamp": str(int(time.time()) + offset)}
        sent = {**good, **headers} if headers else {"content-type": "application/json"}
        response = await h.client.post("/v1/jobs", content=raw, headers=sent)
        assert response.status_code == 401
        assert response.json()["error_code"] == code


async def test_body_changed_after_signing_is_401(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(secrets.client, job_body())
        response = await h.client.post("/v1/jobs", content=raw.replace(b"hello", b"HELLO"), headers=headers)
        assert response.json()["error_code"] == "SIGNATURE_INVALID"


async def test_signed_with_another_clients_secret_is_401(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        response = await h.submit(job_body(), secret=secrets.other)
        assert response.status_code == 401


async def test_unknown_client_is_401(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        response = await h.submit(job_body(client_id="mallory"), secret=secrets.client)
        assert response.json()["error_code"] == "UNKNOWN_CLIENT"


async def test_replayed_webhook_id_is_401(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(secrets.client, job_body())
        assert (await h.client.post("/v1/jobs", content=raw, headers=headers)).status_code == 202
        replay = await h.client.post("/v1/jobs", content=raw, headers=headers)
        assert replay.status_code == 401
        assert replay.json()["error_code"] == "SIGNATURE_REPLAYED"


async def test_rotated_secrets_both_verify(start_bridge, secrets):
    from n8nctl.signing import generate_secret

    new = generate_secret()
    async with start_bridge(workers=False, bridge_client_secrets=f"flowbiz:{new}|{secrets.client}") as h:
        assert (await h.submit(job_body(), secret=new)).status_code == 202
        assert (await h.submit(job_body(), secret=secrets.client)).status_code == 202


async def test_body_client_id_must_be_the_signer(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(secrets.client, job_body(client_id="other"), **{"X-Client-Id": "flowbiz"})
        response = await h.client.post("/v1/jobs", content=raw, headers=headers)
        assert response.status_code == 403
        assert response.json()["error_code"] == "CLIENT_MISMATCH"


async def test_client_not_allowed_to_run_workflow_is_403(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        response = await h.submit(job_body(client_id="other"), secret=secrets.other)
        assert response.status_code == 403
        assert response.json()["error_code"] == "WORKFLOW_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"workflow_key": "no_such_workflow"}, "UNKNOWN_WORKFLOW"),
        ({"timeout_seconds": 301}, "TIMEOUT_TOO_LARGE"),
        ({"inputs": {"stream_id": "s"}}, "INPUTS_INVALID"),
        ({"inputs": {"stream_id": "s", "comments": [{"user": "a", "text": 5}]}}, "INPUTS_INVALID"),
        ({"callback_url": "http://flowbiz.example/cb"}, "CALLBACK_URL_NOT_ALLOWED"),
        ({"priority": 11}, "VALIDATION_ERROR"),
        ({"priority": 0}, "VALIDATION_ERROR"),
        ({"callback_url": "not a url"}, "VALIDATION_ERROR"),
        ({"unexpected": 1}, "VALIDATION_ERROR"),
        ({"job_id": "has spaces"}, "VALIDATION_ERROR"),
    ],
)
async def test_invalid_jobs_are_422(start_bridge, change, code):
    async with start_bridge(workers=False) as h:
        response = await h.submit(job_body(**change))
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["error_code"] == code
        assert set(error) == {"error_code", "message", "detail"}


async def test_global_timeout_ceiling_applies(start_bridge):
    async with start_bridge(workers=False, bridge_max_timeout_seconds=60) as h:
        response = await h.submit(job_body(timeout_seconds=61))
        assert response.json() == {
            "error_code": "TIMEOUT_TOO_LARGE",
            "message": "timeout_seconds 61 is over the maximum 60",
            "detail": {"max_timeout_seconds": 60},
        }


async def test_https_callback_is_accepted_anywhere(start_bridge):
    async with start_bridge(workers=False) as h:
        response = await h.submit(job_body(callback_url="https://flowbiz.example/cb"))
        assert response.status_code == 202


async def test_disabled_workflow_is_422(start_bridge, registry):
    disabled = registry.model_copy(
        update={
            "workflows": {
                **registry.workflows,
                "tiktok_live_helper": registry.workflows["tiktok_live_helper"].model_copy(
                    update={"enabled": False}
                ),
            }
        }
    )
    async with start_bridge(workers=False, registry_=disabled) as h:
        response = await h.submit(job_body())
        assert response.json()["error_code"] == "WORKFLOW_DISABLED"


async def _kill(h, key: str, *, expect: int, body_for) -> dict:
    """Flip a switch in the store; poll (2 s deadline) until the API enforces it. Returns the error body."""
    h.app.state.bridge.store.set_switch(key, killed=True, reason="incident", actor="ops")

    async def enforced():
        response = await h.submit(body_for())
        return response if response.status_code == expect else None

    response = await eventually(enforced, timeout=2.0, what=f"kill of {key} to take effect")
    return {**response.json(), "retry_after": response.headers.get("retry-after")}


async def test_killed_workflow_is_423_and_global_kill_is_503(start_bridge):
    def pipeline():
        return job_body(workflow_key="content_pipeline", inputs={"campaign": "c", "plan": "p"})

    async with start_bridge(workers=False) as h:
        assert (await _kill(h, "tiktok_live_helper", expect=423, body_for=job_body))[
            "error_code"
        ] == "WORKFLOW_KILLED"
        assert (await h.submit(pipeline())).status_code == 202
        error = await _kill(h, "*", expect=503, body_for=pipeline)
        assert (error["error_code"], error["retry_after"]) == ("N8N_KILLED", "60")


async def test_retry_of_an_accepted_job_after_a_kill_is_still_200(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        assert (await h.submit(body)).status_code == 202
        await _kill(h, "tiktok_live_helper", expect=423, body_for=job_body)
        again = await h.submit(body)
        assert again.status_code == 200
        assert again.json()["job_id"] == body["job_id"]


async def test_over_the_rate_is_429_with_retry_after(start_bridge):
    async with start_bridge(workers=False, bridge_rate_limit="3/minute") as h:
        codes = [(await h.submit(job_body())).status_code for _ in range(3)]
        assert codes == [202, 202, 202]
        response = await h.submit(job_body())
        assert response.status_code == 429
        assert response.json()["error_code"] == "RATE_LIMITED"
        assert 1 <= int(response.headers["retry-after"]) <= 61


async def test_rate_limit_is_per_client(start_bridge, secrets, registry):
    open_registry = registry.model_copy(
        update={
            "workflows": {
                "tiktok_live_helper": registry.workflows["tiktok_live_helper"].model_copy(
                    update={"allowed_clients": ("*",)}
                )
            }
        }
    )
    async with start_bridge(workers=False, bridge_rate_limit="1/minute", registry_=open_registry) as h:
        assert (await h.submit(job_body())).status_code == 202
        assert (await h.submit(job_body())).status_code == 429
        assert (await h.submit(job_body(client_id="other"), secret=secrets.other)).status_code == 202


async def test_oversized_body_is_413(start_bridge, secrets):
    async with start_bridge(workers=False, bridge_max_body_bytes=2048) as h:
        response = await h.submit(job_body(inputs={"stream_id": "s", "comments": [], "pad": "x" * 4096}))
        assert response.status_code == 413
        assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"


async def test_malformed_json_is_400(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        raw = b"{not json"
        response = await h.client.post(
            "/v1/jobs", content=raw, headers={**sign_headers(secrets.client, raw), "X-Client-Id": "flowbiz"}
        )
        assert (response.status_code, response.json()["error_code"]) == (400, "MALFORMED_JSON")


async def test_unknown_path_and_method_use_the_error_shape(start_bridge):
    async with start_bridge(workers=False) as h:
        missing = await h.client.get("/v2/nothing")
        assert (missing.status_code, missing.json()["error_code"]) == (404, "NOT_FOUND")
        wrong = await h.client.delete("/v1/jobs")
        assert (wrong.status_code, wrong.json()["error_code"]) == (405, "METHOD_NOT_ALLOWED")


async def test_get_job_and_status_for_its_own_client(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        for path in (f"/v1/jobs/{body['job_id']}", f"/v1/jobs/{body['job_id']}/status"):
            response = await h.get(path)
            assert response.status_code == 200, response.text
            view = response.json()
            assert view["status"] == "pending"
            assert view["workflow_key"] == "tiktok_live_helper"
            assert view["callback"] is None


async def test_another_clients_job_is_404(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        response = await h.get(f"/v1/jobs/{body['job_id']}", client_id="other", secret=secrets.other)
        assert (response.status_code, response.json()["error_code"]) == (404, "JOB_NOT_FOUND")
        missing = await h.get("/v1/jobs/no-such-job", client_id="other", secret=secrets.other)
        assert missing.json()["message"].replace("no-such-job", body["job_id"]) == response.json()["message"]
        cancel = await h.cancel(body["job_id"], client_id="other", secret=secrets.other)
        assert cancel.status_code == 404


async def test_unsigned_get_is_401(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        response = await h.client.get(f"/v1/jobs/{body['job_id']}", headers={"X-Client-Id": "flowbiz"})
        assert response.status_code == 401


async def test_cancel_pending_job_then_cancel_again_is_409(start_bridge):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        response = await h.cancel(body["job_id"], reason="customer withdrew")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        again = await h.cancel(body["job_id"])
        assert (again.status_code, again.json()["error_code"]) == (409, "JOB_ALREADY_FINISHED")
        actions = [e["action"] for e in h.app.state.bridge.store.audit_for(body["job_id"])]
        assert actions == ["accepted", "cancelled"]


async def test_cancel_body_must_name_the_signer(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        raw, headers = signed(secrets.client, {"client_id": "other"}, **{"X-Client-Id": "flowbiz"})
        response = await h.client.post(f"/v1/jobs/{body['job_id']}/cancel", content=raw, headers=headers)
        assert (response.status_code, response.json()["error_code"]) == (403, "CLIENT_MISMATCH")


async def test_n8n_result_needs_n8n_signature(start_bridge, secrets):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        raw, headers = signed(secrets.client, {"job_id": body["job_id"], "status": "success"})
        response = await h.client.post("/v1/callbacks/n8n", content=raw, headers=headers)
        assert response.status_code == 401
        assert h.app.state.bridge.store.get_job(body["job_id"])["status"] == "pending"


async def test_n8n_result_for_unknown_job_is_404_and_bad_status_422(start_bridge):
    async with start_bridge(workers=False) as h:
        assert (await h.result("nope")).json()["error_code"] == "JOB_NOT_FOUND"
        body = job_body()
        await h.submit(body)
        response = await h.result(body["job_id"], status="done")
        assert (response.status_code, response.json()["error_code"]) == (422, "VALIDATION_ERROR")


async def test_health_readiness_meta_metrics_openapi(start_bridge):
    async with start_bridge(workers=False) as h:
        assert (await h.client.get("/healthz")).json() == {"status": "ok"}
        ready = await h.client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "store": True, "n8n": True}
        h.n8n.up = False
        assert (await h.client.get("/readyz")).json()["n8n"] is False
        meta = (await h.client.get("/v1/meta")).json()
        keys = {w["workflow_key"] for w in meta["workflows"]}
        assert {"tiktok_live_helper", "content_pipeline"} <= keys
        assert meta["limits"]["max_body_bytes"] == 1024 * 1024
        assert "allowed_clients" not in json.dumps(meta)
        await h.submit(job_body())
        metrics = (await h.client.get("/metrics")).text
        assert 'bridge_jobs_accepted_total{workflow_key="tiktok_live_helper"} 1.0' in metrics
        assert 'bridge_jobs_active{status="pending"} 1.0' in metrics
        spec = (await h.client.get("/openapi.json")).json()
        assert spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/JobRequest"
        }
        assert "AuditEntry" in spec["components"]["schemas"]
