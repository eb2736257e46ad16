"""Kill-switch latency: from invoking `n8nctl kill KEY` to the first job the bridge rejects, while jobs
are submitted back to back, against the start time of `n8nctl --version` measured in the same run.

Needs the stack of this project running, without a rate limit in the way; kills and revives KEY each
round:

    BRIDGE_RATE_LIMIT=100000/minute BRIDGE_ENVIRONMENT=development ./scripts/n8nctl up
    .venv/bin/python bench/killswitch.py [--key tiktok_live_helper] [--rounds 5]

Goal (issue 5): under 1 s to the first rejected job.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from n8nctl.adapters.bridge_client import BridgeClient  # noqa: E402
from n8nctl.errors import RemoteError  # noqa: E402
from n8nctl.settings import load_settings  # noqa: E402

N8NCTL = str(Path(sys.executable).parent / "n8nctl")
INPUTS = {
    "tiktok_live_helper": {"stream_id": "bench", "comments": [{"user": "a", "text": "hi"}]},
    "content_pipeline": {"campaign": "bench", "plan": "- one"},
}


def first_rejection(client: BridgeClient, key: str) -> tuple[float, float]:
    """Seconds from invoking `kill` to the first rejected submission, and the command's own time."""
    rejected_at: list[float] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            body = {
                "job_id": f"bench-{uuid.uuid4().hex}",
                "client_id": client.client_id,
                "workflow_key": key,
                "inputs": INPUTS[key],
                "callback_url": "http://127.0.0.1:9/none",
            }
            try:
                client.submit(body)
            except RemoteError as exc:
                if exc.error_code == "RATE_LIMITED":
                    sys.exit("the bridge rate-limits the load: start it with BRIDGE_RATE_LIMIT=100000/minute")
                if exc.error_code == "WORKFLOW_KILLED":
                    rejected_at.append(sent)
                    return

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(1.0)  # the load runs before the kill
    invoked = time.monotonic()
    subprocess.run(
        [N8NCTL, "kill", key, "--reason", "bench", "--actor", "bench"], check=True, capture_output=True
    )
    took = time.monotonic() - invoked
    thread.join(timeout=10)
    stop.set()
    subprocess.run([N8NCTL, "revive", key, "--actor", "bench"], check=True, capture_output=True)
    return rejected_at[0] - invoked, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default="tiktok_live_helper", choices=sorted(INPUTS))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings()
    client_id, _, secret = settings.bridge_client_secrets.get_secret_value().split(",")[0].partition(":")
    client = BridgeClient(settings.bridge_url, client_id, secret.split("|")[0])

    starts = []
    for _ in range(args.rounds):
        started = time.monotonic()
        subprocess.run([N8NCTL, "--version"], check=True, capture_output=True)
        starts.append(time.monotonic() - started)
    rounds = [first_rejection(client, args.key) for _ in range(args.rounds)]
    baseline = statistics.median(starts)
    reject = statistics.median(r for r, _ in rounds)
    took = statistics.median(t for _, t in rounds)
    print(f"n8nctl --version (baseline):        {baseline:.3f} s")
    print(f"kill -> first rejected job (median): {reject:.3f} s  ratio {reject / baseline:.1f}x baseline")
    print(f"kill command, all four steps:        {took:.3f} s")
    print(f"rounds (reject, command): {[(round(r, 3), round(t, 3)) for r, t in rounds]}")
    print("goal: < 1 s to the first rejected job:", "met" if reject < 1.0 else "NOT met")


if __name__ == "__main__":
    main()
