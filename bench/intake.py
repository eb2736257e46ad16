"""Intake throughput: the bridge's POST /v1/jobs (signed, validated, fsync'd, 202) against a bare
Starlette endpoint on the same machine, in the same run. Load from wrk on 127.0.0.1 only.

    .venv/bin/python bench/intake.py [--seconds 10] [--connections 16]

Each request is pre-signed with its own webhook-id and job_id (the bridge rejects replays), and wrk's
threads take disjoint slices of them. Prints requests/s, latency percentiles and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from n8nctl.signing import generate_secret, sign_headers  # noqa: E402

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def jobs(request):
    await request.body()
    return JSONResponse({"status": "pending"}, status_code=202)

app = Starlette(routes=[Route("/v1/jobs", jobs, methods=["POST"])])
"""

LUA = """
local requests = {}
for line in io.lines("{requests}") do
  local id, stamp, signature, body = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)")
  requests[#requests + 1] = {id, stamp, signature, body}
end
local counter = 0
local threads = {threads}
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
function init(args)
  index = offset + 1
end
function request()
  local r = requests[index]
  index = index + threads
  if r == nil then
    wrk.thread:stop()
    r = requests[1]
  end
  local headers = {["webhook-id"] = r[1], ["webhook-timestamp"] = r[2], ["webhook-signature"] = r[3],
                   ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/v1/jobs", headers, r[4])
end
local shown = 0
function response(status, headers, body)
  if status >= 300 and shown < 2 then
    shown = shown + 1
    io.stderr:write(status .. " " .. body .. "\\n")
  end
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def write_requests(path: Path, secret: str, count: int, callback: str) -> None:
    """One pre-signed request per line, tab-separated: webhook-id, -timestamp, -signature, body."""
    with path.open("w") as out:
        for n in range(count):
            body = json.dumps(
                {
                    "job_id": f"bench-{n}",
                    "client_id": "bench",
                    "workflow_key": "tiktok_live_helper",
                    "inputs": {"stream_id": "s", "comments": [{"user": "u", "text": "hello"}]},
                    "callback_url": callback,
                    "metadata": {"user_id": "bench"},
                },
                separators=(",", ":"),
            )
            headers = sign_headers(secret, body.encode())
            out.write(
                "\t".join(
                    (headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"], body)
                )
                + "\n"
            )


def run_wrk(url: str, script: Path, seconds: int, connections: int, threads: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if result.stderr:
        print(result.stderr, file=sys.stderr)
    output = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {}
    for label in ("50%", "99%"):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        latency[label] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50_ms": latency["50%"],
        "p99_ms": latency["99%"],
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    threads = 2
    work = Path(tempfile.mkdtemp(prefix="n8nctl-bench-"))
    secret = generate_secret()
    requests = work / "requests.lua"
    write_requests(requests, secret, 30000 * args.seconds, "http://127.0.0.1:9/cb")
    script = work / "intake.lua"
    script.write_text(LUA.replace("{requests}", str(requests)).replace("{threads}", str(threads)))
    (work / "bare.py").write_text(BARE_APP)
    venv_bin = Path(sys.executable).parent
    results = {}
    for name in ("bare", "bridge"):
        port = free_port()
        env = {
            **os.environ,
            "N8NCTL_PROJECT_DIR": str(ROOT),
            "BRIDGE_DATABASE_URL": f"sqlite:///{work}/{name}.db",
            "BRIDGE_CLIENT_SECRETS": f"bench:{secret}",
            "BRIDGE_RATE_LIMIT": "1000000/second",
            "BRIDGE_WORKERS": "false",
            "BRIDGE_ENVIRONMENT": "development",  # callback_url is on loopback
        }
        registry = json.loads((ROOT / "workflows/registry.json").read_text())
        registry["workflows"]["tiktok_live_helper"]["allowed_clients"] = ["*"]
        (work / "registry.json").write_text(json.dumps(registry))
        env["BRIDGE_REGISTRY_PATH"] = str(work / "registry.json")
        command = (
            [
                str(venv_bin / "uvicorn"),
                "--app-dir",
                str(work),
                "bare:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            if name == "bare"
            else [str(venv_bin / "n8nctl"), "bridge", "serve", "--port", str(port), "--log-level", "warning"]
        )
        if name != "bare":  # the bridge serves a migrated store only (docs/adr/0040)
            subprocess.run([str(venv_bin / "n8nctl"), "bridge", "migrate"], env=env, cwd=work, check=True)
        process = subprocess.Popen(command, env=env, cwd=work)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
            results[name] = run_wrk(
                f"http://127.0.0.1:{port}", script, args.seconds, args.connections, threads
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    for name, r in results.items():
        print(
            f"{name:7} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"non-2xx {r['errors']:.0f}"
        )
    print(f"ratio bridge/bare: {results['bridge']['rps'] / results['bare']['rps']:.2f}")
    if any(r["errors"] for r in results.values()):
        raise SystemExit("some requests were not answered 2xx: the numbers above are not valid")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
