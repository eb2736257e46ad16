"""The load intake's benchmark drives with wrk: pre-signed POST /v1/jobs requests (each its own
webhook-id and job_id, the bridge rejects replays), a wrk Lua script whose threads take disjoint
slices of them, and wrk's figures parsed. Loads only 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from n8nctl.signing import generate_secret, sign_headers

LUA = """
local requests = {}
for line in io.lines("{requests}") do
  local id, stamp, signature, body = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)")
  requests[#requests + 1] = {id, stamp, signature, body}
end
local counter = 0
local threads = {threads}
local pause = {delay}
function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end
function init(args)
  index = offset + 1
end
function delay()
  return pause
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
THREADS = 2
PER_SECOND = 30_000  # pre-signed requests per second of run: more than the bare endpoint takes


def write_requests(path: Path, secret: str, count: int, callback: str, prefix: str) -> None:
    """One pre-signed request per line, tab-separated: webhook-id, -timestamp, -signature, body."""
    with path.open("w") as out:
        for n in range(count):
            body = json.dumps(
                {
                    "job_id": f"{prefix}-{n}",
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


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    result = subprocess.run(
        ["wrk", "-t", str(THREADS), "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
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
        "requests": float(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "rps": rps,
        "p50_ms": latency["50%"],
        "p99_ms": latency["99%"],
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


class Load:
    """Pre-signed requests (a fresh slice per run: the bridge rejects replays) and wrk scripts."""

    def __init__(self, work: Path, seconds: int) -> None:
        self.work, self.seconds, self.secret, self.runs = work, seconds, generate_secret(), 0

    def script(self, delay_ms: float = 0) -> Path:
        self.runs += 1
        requests = self.work / f"requests-{self.runs}.txt"
        write_requests(
            requests, self.secret, PER_SECOND * self.seconds, "http://127.0.0.1:9/cb", f"b{self.runs}"
        )
        script = self.work / f"intake-{self.runs}.lua"
        text = LUA.replace("{requests}", str(requests)).replace("{threads}", str(THREADS))
        script.write_text(text.replace("{delay}", str(int(delay_ms))))
        return script
