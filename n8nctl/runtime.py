"""Which runtime runs the stack. `up` chooses (compose when a Docker engine answers, else native) and
remembers its choice in <state dir>/stack.json, so `down`, `status`, `logs` and the kill-switch act on
the stack that is actually running. No file: the native runtime (as before the compose runtime existed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

from n8nctl.errors import ConfigError, UnreachableError
from n8nctl.settings import Settings

Runtime = Literal["compose", "native"]


@dataclass(frozen=True)
class ActiveStack:
    runtime: Runtime
    prod: bool = False
    workers: int = 1


def active(settings: Settings) -> ActiveStack:
    path = settings.state_dir / "stack.json"
    try:
        data = json.loads(path.read_text())
        return ActiveStack(runtime=data["runtime"], prod=bool(data["prod"]), workers=int(data["workers"]))
    except FileNotFoundError:
        return ActiveStack("native")
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is unreadable", fix="Delete it and run n8nctl up again (it records the runtime)."
        ) from None


def remember(settings: Settings, stack: ActiveStack) -> None:
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (settings.state_dir / "stack.json").write_text(json.dumps(asdict(stack)) + "\n")


def forget(settings: Settings) -> None:
    (settings.state_dir / "stack.json").unlink(missing_ok=True)


def choose(
    settings: Settings, requested: str | None, *, prod: bool, engine_answers: Callable[[], bool]
) -> tuple[Runtime, str]:
    """The runtime for `up`, and why it was chosen (printed to the operator)."""
    wanted = requested or settings.n8nctl_runtime
    source = "--runtime" if requested else "N8NCTL_RUNTIME"
    if wanted == "native":
        if prod:
            raise ConfigError(
                "--prod needs the compose runtime",
                why=f"{source} is native, and the prod stack (queue mode) runs on compose only",
                fix="Drop --runtime native (or set N8NCTL_RUNTIME=auto) on a host with Docker.",
            )
        return "native", source
    answers = engine_answers()
    if not answers and (wanted == "compose" or prod):
        raise UnreachableError(
            "no Docker engine answers",
            why=f"{'the prod stack' if prod else source} needs the compose runtime, and `docker version` "
            "reaches no daemon",
            fix="Start Docker (docker info must work) and retry; dev stacks also run with --runtime native.",
        )
    if wanted == "compose":
        return "compose", source
    return ("compose", "a Docker engine answers") if answers else ("native", "no Docker engine answers")
