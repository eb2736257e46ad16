"""Kill-switch latency: from invoking `n8nctl kill KEY` to the first job the bridge rejects, while jobs
are submitted back to back and n8n runs them, and a spinning process keeps both cores busy, against
the start time of `n8nctl --version` measured in the same run. Each round kills and revives KEY.

    .venv/bin/python bench/killswitch.py [--rounds 7]        # starts a native stack

Goal (issue 5, issue 13): under 1 s to the first rejected job, in every round.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, Figure, Stack, native_stack, spread, wait_quiet
from n8nctl.adapters.bridge_client import BridgeClient
from n8nctl.errors import RemoteError

KEY = "tiktok_live_helper"
INPUTS = {"stream_id": "bench", "comments": [{"user": "a", "text": "hi"}]}
SPIN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass"


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def first_rejection(stack: Stack, client: BridgeClient) -> tuple[float, float, float]:
    """Seconds from invoking `kill` to the first rejected submission, the command's own time, and the
    share of both cores busy meanwhile."""
    rejected_at: list[float] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            body = {
                "job_id": f"bench-{uuid.uuid4().hex}",
                "client_id": client.client_id,
                "workflow_key": KEY,
                "inputs": INPUTS,
                "callback_url": "http://127.0.0.1:9/none",
            }
            try:
                client.submit(body)
            except RemoteError as exc:
                if exc.error_code == "WORKFLOW_KILLED":
                    rejected_at.append(sent)
                    return
                raise

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(1.0)  # the load runs before the kill
    busy0, total0 = cpu_busy()
    invoked = time.monotonic()
    done = stack.cli("kill", KEY, "--reason", "bench", "--actor", "bench")
    took = time.monotonic() - invoked
    thread.join(timeout=10)
    stop.set()
    busy1, total1 = cpu_busy()
    if done.returncode != 0 or not rejected_at:
        raise SystemExit(f"kill failed or no job was rejected:\n{done.stdout}\n{done.stderr}")
    revive = stack.cli("revive", KEY, "--actor", "bench")
    if revive.returncode != 0:
        raise SystemExit(f"revive failed:\n{revive.stdout}\n{revive.stderr}")
    return rejected_at[0] - invoked, took, (busy1 - busy0) / max(1, total1 - total0)


def measure(stack: Stack, *, rounds: int) -> list[Figure]:
    client_id, secret = stack.client_secret()
    client = BridgeClient(stack.settings.bridge_url, client_id, secret)
    load = wait_quiet()
    starts = []
    for _ in range(rounds):
        started = time.monotonic()
        subprocess.run([str(BIN / "n8nctl"), "--version"], check=True, capture_output=True)
        starts.append(time.monotonic() - started)
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        results = [first_rejection(stack, client) for _ in range(rounds)]
    finally:
        spinner.kill()
        spinner.wait()
    rejects = [r for r, _, _ in results]
    return [
        Figure(
            "killswitch", "kill -> first rejected job (median; goal on the slowest round)",
            statistics.median(rejects), "s", "n8nctl --version", statistics.median(starts),
            "< 1 s in every round", max(rejects) < 1.0, rejects, ".venv/bin/python bench/killswitch.py",
            f"rounds {spread(rejects)} s; whole kill command {spread([t for _, t, _ in results])} s; "
            f"both cores {min(b for _, _, b in results):.0%}-{max(b for _, _, b in results):.0%} busy",
            load_before=load,
        )
    ]  # fmt: skip


def run(*, rounds: int = 7, stack: Stack | None = None) -> list[Figure]:
    if stack is not None:
        return measure(stack, rounds=rounds)
    with native_stack() as started:
        return measure(started, rounds=rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for figure in run(rounds=args.rounds):
        print(f"{figure.name}: {figure.value:.3f} s (baseline {figure.baseline:.3f} s); {figure.target}: "
              f"{'met' if figure.met else 'NOT met'}; {figure.notes}")  # fmt: skip


if __name__ == "__main__":
    main()
