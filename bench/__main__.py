"""Every benchmark in one run: a table (Markdown) and a JSON file of every figure, its baseline from the
same run, the ratio, the load average and the machine.

    .venv/bin/python -m bench [--only cli,killswitch,intake,store,drain] [--out bench/results] [--quick]

cli and killswitch share one native stack (`n8nctl up` in a temporary project; n8n must be installed
in the cache, as `n8nctl up` does once). intake starts its own bridge and bare endpoint, on SQLite and
on a PostgreSQL of its own (tests/pg.py). A benchmark script of another part of the work that writes
its own JSON (bench/drain.py, bench/e2e_latency.py: `--json PATH`) runs when it is there, and its JSON
goes into the results as it is. Each measurement first waits (BENCH_QUIET_WAIT seconds at most) for
the 1-minute load to fall under 1.5, and records the load it started at.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cli, intake, killswitch, store_submit
from bench.common import ROOT, Figure, Stack, machine, native_stack

EXTERNAL = ("drain", "e2e_latency")  # scripts of their own, run with --json PATH when present
ALL = ("cli", "killswitch", "intake", "store", *EXTERNAL)


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return done.stdout.strip()


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    lines = [
        "| goal | figure | value | baseline (same run) | ratio | target | met | load before / after "
        "| command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        baseline = f"{_cell(f.baseline)} {f.unit} ({f.baseline_name})" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(
            f"| {f.goal} | {f.name} | {_cell(f.value)} {f.unit} | {baseline} | {ratio} | {f.target or '-'} | "
            f"{met} | {f.load_before if f.load_before is not None else '-'} / {f.load} | `{f.command}` |"
        )
    return "\n".join(lines) + "\n"


def external(name: str, out: Path) -> dict[str, Any] | None:
    """Run bench/NAME.py --json OUT/NAME.json when the script exists; its JSON, or why there is none."""
    script = ROOT / "bench" / f"{name}.py"
    if not script.exists():
        return None
    target = out / f"{name}.json"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), "--json", str(target)], cwd=ROOT, check=False)
    if done.returncode != 0 or not target.exists():
        return {"error": f"bench/{name}.py exited {done.returncode}", "seconds": time.monotonic() - started}
    return {"results": json.loads(target.read_text()), "command": f".venv/bin/python bench/{name}.py"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated, of: {', '.join(ALL)}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter runs (a smoke test)")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    if unknown := set(chosen) - set(ALL):
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    figures: list[Figure] = []
    others: dict[str, Any] = {}

    def save() -> str:
        """Write what is measured so far (a run stopped halfway keeps its figures)."""
        results = {
            "started": started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "commit": _commit(),
            "machine": machine(),
            "command": "python -m bench " + " ".join(sys.argv[1:]),
            "figures": [figure.record() for figure in figures],
            "external": others,
        }
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        spec = results["machine"]
        text = (
            f"Run {started:%Y-%m-%d %H:%M} UTC, commit {results['commit']}, {spec['cores']} cores "
            f"({spec['cpu']}), {spec['memory_gib']} GiB, Python {spec['python']}\n\n" + table(figures)
        )
        for name, result in others.items():
            error = f" ({result['error']})" if "error" in result else ""
            text += f"\n{name}: see {args.out / (name + '.json')}{error}"
        (args.out / "results.md").write_text(text + "\n")
        return text

    with ExitStack() as stacks:
        stack: Stack | None = None
        if {"cli", "killswitch"} & set(chosen):
            stack = stacks.enter_context(native_stack())
        if "cli" in chosen:
            figures += cli.run(runs=5 if args.quick else 20, stack=stack)
            save()
        if "killswitch" in chosen:
            figures += killswitch.run(rounds=2 if args.quick else 7, stack=stack)
            save()
    if "intake" in chosen:
        seconds, repeats = (3, 1) if args.quick else (10, 3)
        figures += intake.run(seconds=seconds, repeats=repeats, replicas=True)
        save()
    if "store" in chosen:
        figures += store_submit.run(seconds=1 if args.quick else 3)
        save()
    for name in EXTERNAL:
        if name in chosen and (result := external(name, args.out)):
            others[name] = result
    print(save())
    print(f"written: {args.out / 'results.md'}, {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
