"""CLI start times, cold process: `n8nctl --help` and `n8nctl status` (which reads the bridge's last
hour from the store) against the interpreter's own start (`python -c pass`), timed by hyperfine.

    .venv/bin/python bench/cli.py [--runs 20]        # starts a native stack for `status`

Goals (DESIGN.md 6, issue 13): --help < 300 ms, status < 1 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, Figure, Stack, native_stack, spread, wait_quiet


def hyperfine(
    commands: dict[str, str], *, runs: int, env: dict[str, str], cwd: Path
) -> dict[str, list[float]]:
    """Wall-clock seconds of each run of each command (hyperfine, 2 warm-up runs, no shell)."""
    if not shutil.which("hyperfine"):
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            ["hyperfine", "-N", "-w", "2", "-r", str(runs), "-i", "--export-json", out.name,
             *commands.values()],
            env=env, cwd=cwd, check=True, capture_output=True,
        )  # fmt: skip
        results = json.loads(Path(out.name).read_text())["results"]
    return {name: result["times"] for name, result in zip(commands, results, strict=True)}


def measure(stack: Stack, *, runs: int) -> list[Figure]:
    load = wait_quiet()
    times = hyperfine(
        {
            "python": f"{BIN}/python -c pass",
            "help": f"{BIN}/n8nctl --help",
            "status": f"{BIN}/n8nctl status",
        },
        runs=runs,
        env=stack.env,
        cwd=stack.project,
    )
    median = {name: sorted(values)[len(values) // 2] for name, values in times.items()}
    figures = []
    for name, label, limit in (("help", "n8nctl --help", 0.3), ("status", "n8nctl status", 1.0)):
        figures.append(
            Figure(
                "cli", f"{label}, cold process (median)", median[name] * 1000, "ms",
                "python -c pass", median["python"] * 1000, f"< {limit * 1000:.0f} ms",
                max(times[name]) < limit, [t * 1000 for t in times[name]],
                ".venv/bin/python bench/cli.py",
                f"slowest {max(times[name]) * 1000:.0f} ms; "
                f"baseline runs {spread([t * 1000 for t in times['python']])} ms",
                load_before=load,
            )
        )  # fmt: skip
    return figures


def run(*, runs: int = 20, stack: Stack | None = None) -> list[Figure]:
    if stack is not None:
        return measure(stack, runs=runs)
    with native_stack() as started:
        return measure(started, runs=runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for figure in run(runs=args.runs):
        print(f"{figure.name}: {figure.value:.0f} ms (baseline {figure.baseline:.0f} ms; {figure.target}: "
              f"{'met' if figure.met else 'NOT met'}); {figure.notes}")  # fmt: skip


if __name__ == "__main__":
    main()
