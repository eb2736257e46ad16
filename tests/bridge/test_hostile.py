"""Hostile input, by class (issue 12): each request here made today's bridge answer 500, hang, grow
without bound or accept something that broke the job later. Through the ASGI app, no workers."""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest

from n8nctl.errors import ConfigError
from n8nctl.signing import generate_secret, sign_headers
from tests.conftest import job_body, signed

DEEP = 300  # inside Python's JSON recursion limit: parses, then broke what came after


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


def _job_text(inputs_text: str, **fields: object) -> bytes:
    """A job body whose `inputs` is raw JSON text (json.dumps cannot write NaN-free hostile forms)."""
    body = json.dumps({**job_body(**fields), "inputs": "__INPUTS__"})
    return body.replace('"__INPUTS__"', inputs_text).encode()


async def _post_signed(h, raw: bytes, path: str = "/v1/jobs", secret: str | None = None):
    headers = {**sign_headers(secret or h.secrets.client, raw), "X-Client-Id": "flowbiz"}
    return await h.client.post(path, content=raw, headers=headers)


# -- one parsing policy: finite numbers, bounded depth, valid UTF-8 without lone surrogates ------------


@pytest.mark.parametrize(
    "inputs",
    [
        '{"stream_id": "s", "comments": [], "score": NaN}',
        '{"stream_id": "s", "comments": [], "score": Infinity}',
        '{"stream_id": "s", "comments": [], "score": -Infinity}',
        '{"stream_id": "s", "comments": [], "score": 1e999}',
        '{"stream_id": "s\\ud800", "comments": []}',
        '{"stream_id": "s", "comments": [], "\\udfff": 1}',
    ],
    ids=["nan", "infinity", "minus-infinity", "overflowing-float", "lone-surrogate", "surrogate-key"],
)
async def test_signed_job_with_unrepresentable_json_is_400(start_bridge, inputs):
    async with start_bridge(workers=False) as h:
        response = await _post_signed(h, _job_text(inputs))
        answer = (response.status_code, response.json().get("error_code"))
        assert answer == (400, "MALFORMED_JSON"), response.text
        assert h.app.state.bridge.store.list_jobs() == []


async def test_signed_job_nested_hundreds_deep_is_400(start_bridge):
    async with start_bridge(workers=False) as h:
        inputs = {"stream_id": "s", "comments": [], "deep": _nested(DEEP)}
        response = await _post_signed(h, json.dumps(job_body(inputs=inputs)).encode())
        assert (response.status_code, response.json().get("error_code")) == (400, "MALFORMED_JSON")
        assert "deeper" in response.json()["message"]


async def test_unsigned_body_nested_beyond_the_recursion_limit_is_400(start_bridge):
    async with start_bridge(workers=False) as h:
        raw = b"[" * 200_000 + b"]" * 200_000
        response = await h.client.post("/v1/jobs", content=raw, headers={"X-Client-Id": "flowbiz"})
        assert (response.status_code, response.json().get("error_code")) == (400, "MALFORMED_JSON")


async def test_body_that_is_not_utf8_is_400(start_bridge):
    async with start_bridge(workers=False) as h:
        raw = json.dumps(job_body()).encode("utf-16")
        response = await _post_signed(h, raw)
        assert (response.status_code, response.json().get("error_code")) == (400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    "outputs",
    ['{"score": NaN}', '{"score": 1e999}', '{"text": "\\udc00"}', json.dumps(_nested(DEEP))],
    ids=["nan", "overflowing-float", "lone-surrogate", "deep"],
)
async def test_n8n_result_with_unrepresentable_outputs_is_400_and_the_job_stays_intact(start_bridge, outputs):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        raw = (
            json.dumps({"job_id": body["job_id"], "status": "success", "outputs": "__OUT__"})
            .replace('"__OUT__"', outputs)
            .encode()
        )
        response = await h.client.post(
            "/v1/callbacks/n8n", content=raw, headers=sign_headers(h.secrets.n8n, raw)
        )
        assert (response.status_code, response.json().get("error_code")) == (400, "MALFORMED_JSON")
        status = await h.get(f"/v1/jobs/{body['job_id']}")
        assert (status.status_code, status.json()["status"]) == (200, "pending")


@pytest.mark.parametrize("field", ["started_at", "completed_at", "audit"])
async def test_n8n_result_with_a_time_without_zone_is_422_and_the_job_stays_readable(start_bridge, field):
    async with start_bridge(workers=False) as h:
        body = job_body()
        await h.submit(body)
        naive = "2026-12-01T10:00:00"
        value = [{"action": "step", "timestamp": naive}] if field == "audit" else naive
        response = await h.result(body["job_id"], **{field: value})
        assert (response.status_code, response.json().get("error_code")) == (422, "VALIDATION_ERROR")
        status = await h.get(f"/v1/jobs/{body['job_id']}")
        assert (status.status_code, status.json()["status"]) == (200, "pending")


# -- the signature headers: bounded, and any byte in them is a 401 at worst ---------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-timestamp", "9" * 400),
        ("webhook-timestamp", "-" + "9" * 400),
        ("webhook-signature", "v1,AAAA " * 2000 + "{good}"),
    ],
    ids=["overflowing-timestamp", "overflowing-negative", "long-signature-header"],
)
async def test_out_of_bounds_signature_headers_are_401(start_bridge, header, value):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(h.secrets.client, job_body())
        value = value.replace("{good}", headers["webhook-signature"])
        response = await h.client.post("/v1/jobs", content=raw, headers={**headers, header: value})
        assert response.status_code == 401, response.text
        assert response.json()["error_code"] == "SIGNATURE_INVALID"


async def test_a_long_webhook_id_is_refused_even_when_validly_signed(start_bridge):
    async with start_bridge(workers=False) as h:
        raw = json.dumps(job_body()).encode()
        headers = {**sign_headers(h.secrets.client, raw, msg_id="m" * 10_000), "X-Client-Id": "flowbiz"}
        response = await h.client.post("/v1/jobs", content=raw, headers=headers)
        assert (response.status_code, response.json().get("error_code")) == (401, "SIGNATURE_INVALID")


async def test_a_non_ascii_candidate_next_to_a_good_signature_still_verifies(start_bridge):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(h.secrets.client, job_body())
        headers["webhook-signature"] = ("v1,\u00e9t\u00e9 " + headers["webhook-signature"]).encode()
        response = await h.client.post("/v1/jobs", content=raw, headers=headers)
        assert response.status_code == 202, response.text


async def test_a_non_ascii_candidate_alone_is_401(start_bridge):
    async with start_bridge(workers=False) as h:
        raw, headers = signed(h.secrets.client, job_body())
        headers["webhook-signature"] = "v1,\u00e9t\u00e9".encode()
        response = await h.client.post("/v1/jobs", content=raw, headers=headers)
        assert (response.status_code, response.json().get("error_code")) == (401, "SIGNATURE_INVALID")


# -- signed reads are rate-limited like writes --------------------------------------------------------


async def test_signed_gets_are_rate_limited(start_bridge):
    async with start_bridge(workers=False, bridge_rate_limit="3/minute") as h:
        body = job_body()
        assert (await h.submit(body)).status_code == 202
        codes = [(await h.get(f"/v1/jobs/{body['job_id']}")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        # reads have their own budget: polling does not use up the client's submissions
        assert (await h.submit(job_body())).status_code == 202


# -- one validation policy: bounded errors, large inputs validated off the event loop ------------------


async def test_a_huge_list_against_a_bounded_schema_answers_fast_with_bounded_errors(start_bridge):
    async with start_bridge(workers=False, bridge_max_body_bytes=4 * 1024 * 1024) as h:
        comments = [{"user": "u", "text": 1}] * 150_000  # maxItems is 500, and every item is wrong
        started = time.monotonic()
        response = await h.submit(job_body(inputs={"stream_id": "s", "comments": comments}))
        elapsed = time.monotonic() - started
        assert (response.status_code, response.json().get("error_code")) == (422, "INPUTS_INVALID")
        detail = response.json()["detail"]
        assert 1 <= len(detail) <= 5
        assert all(len(problem) <= 300 for problem in detail), detail
        assert len(response.content) < 4096
        assert elapsed < 5, f"validation took {elapsed:.1f} s"


async def test_large_inputs_are_validated_off_the_event_loop(start_bridge, registry):
    """While a large input is validated, the event loop keeps serving: the longest gap between ticks
    of a 10 ms ticker stays far below the validation's own duration. The compiled validator decides
    60,000 rows in milliseconds; the slow part left is explaining a rejection (the reference
    implementation walks the rows in Python), so the last row is the wrong one."""
    from n8nctl.registry import WorkflowEntry

    item = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    schema = {"type": "object", "properties": {"rows": {"type": "array", "items": item}}}
    entry = WorkflowEntry.model_validate(
        {**registry.workflows["tiktok_live_helper"].model_dump(), "inputs_schema": schema}
    )
    wide = registry.model_copy(update={"workflows": {"tiktok_live_helper": entry}})
    async with start_bridge(workers=False, registry_=wide, bridge_max_body_bytes=4 * 1024 * 1024) as h:
        rows = [{"a": "x", "b": 1}] * 59_999 + [{"a": "x", "b": "not an integer"}]
        raw, headers = signed(h.secrets.client, job_body(inputs={"rows": rows}))
        gc.collect()  # earlier tests' garbage would pause the loop here, whoever validates
        started = time.monotonic()
        submission = asyncio.ensure_future(h.client.post("/v1/jobs", content=raw, headers=headers))
        gaps = []
        while not submission.done():
            tick = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - tick)
        elapsed = time.monotonic() - started
        assert submission.result().status_code == 422, submission.result().text
        assert submission.result().json()["detail"] == [
            "inputs['rows'][59999]['b']: 'not an integer' is not of type 'integer'"
        ]
        assert elapsed > 0.5, f"the input validated in {elapsed:.2f} s: too fast to tell"
        # validated on the loop, the longest gap is most of `elapsed`; in a thread, a few GIL turns
        # (a ratio, not an absolute bound: on a loaded machine every gap stretches with `elapsed`)
        assert max(gaps) < elapsed / 3, f"the event loop stalled {max(gaps):.2f} s of {elapsed:.2f} s"


# -- configured secrets: malformed or reused ones stop the bridge at start -----------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"bridge_client_secrets": "flowbiz:whsec_"},
        {"bridge_client_secrets": "flowbiz:whsec_!!notbase64!!"},
        {"bridge_client_secrets": "flowbiz:plain-text"},
        {"bridge_callback_signing_secret": "whsec_"},
        {"bridge_n8n_callback_secret": "whsec_%%%"},
    ],
    ids=["empty-key", "not-base64", "no-prefix", "empty-callback-secret", "bad-n8n-secret"],
)
def test_a_malformed_secret_stops_the_bridge_at_start_naming_the_setting(make_settings, registry, overrides):
    from n8nctl.bridge.app import create_app

    with pytest.raises(ConfigError) as error:
        create_app(make_settings(**overrides), registry, workers=False)
    name = next(iter(overrides)).upper()
    assert name in error.value.line()
    assert "notbase64" not in error.value.line() and "plain-text" not in error.value.line()


def test_the_n8n_secret_must_differ_from_the_callback_signing_secret(make_settings, registry):
    from n8nctl.bridge.app import create_app

    same = generate_secret()
    with pytest.raises(ConfigError) as error:
        create_app(
            make_settings(bridge_n8n_callback_secret=same, bridge_callback_signing_secret=same),
            registry,
            workers=False,
        )
    line = error.value.line()
    assert "BRIDGE_N8N_CALLBACK_SECRET" in line and "BRIDGE_CALLBACK_SIGNING_SECRET" in line
    assert same not in line


def test_a_client_secret_may_not_be_the_n8n_secret(make_settings, registry, secrets):
    """A client holding n8n's secret could post results for any job."""
    from n8nctl.bridge.app import create_app

    with pytest.raises(ConfigError, match="BRIDGE_CLIENT_SECRETS"):
        create_app(make_settings(bridge_client_secrets=f"flowbiz:{secrets.n8n}"), registry, workers=False)
