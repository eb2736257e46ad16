"""The kill-switch: stop one workflow, or all of n8n, in seconds, check that it took effect; and undo it.

The switch itself is a row in the bridge's store (ADR 9): every bridge replica reads it, in the same
transaction that claims jobs for dispatch, and it survives restarts. n8n is then changed through its
API (one workflow) or its service is stopped (all). Every step runs even when an earlier one failed,
and each reports whether it worked; the caller exits non-zero when any did not.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from n8nctl.contract import N8N_KILLED_MESSAGE, WORKFLOW_KILLED_MESSAGE
from n8nctl.errors import N8nctlError, RemoteError
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.store import Store
from n8nctl.store.store import ACTIVE, GLOBAL_SWITCH
from n8nctl.wait import until

if TYPE_CHECKING:
    from n8nctl.adapters.n8n_api import N8nApi

# HTTP and n8n's side (API client, stack control) are imported when used: the bridge's switch is
# set first, and an incident command should spend its first second on that, not on imports.
VERIFY_TIMEOUT = 5.0
N8N_START_TIMEOUT = 180.0


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class KillSwitch:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        open_store: Callable[[], Store],
        *,
        actor: str,
        report: Callable[[Step], None] = lambda step: None,
    ) -> None:
        """`open_store` is called at the first step that needs the job store: when the store does not
        answer, those steps fail and the n8n steps still run."""
        self.settings, self.registry, self.actor = settings, registry, actor
        self._open_store = open_store
        self._store: Store | N8nctlError | None = None
        self._report = report
        self.steps: list[Step] = []

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = self._open_store()
            except N8nctlError as exc:
                self._store = exc
        if isinstance(self._store, N8nctlError):
            raise self._store
        return self._store

    # -- what the commands do -------------------------------------------------------------------------

    def kill(self, key: str, reason: str, *, stored: bool = False) -> list[Step]:
        """`stored`: the running bridge already stored the switch (the operator socket, ADR 62)."""
        self.registry.entry(key)  # an unknown key fails here, before anything changes
        self._run(
            "bridge rejects new jobs", lambda: self._switch(key, killed=True, reason=reason, stored=stored)
        )
        workflow_id = self._run("n8n workflow deactivated", lambda: self._set_active(key, active=False))
        self._run("queued jobs failed", lambda: self._fail_jobs(key))
        self._run("running executions stopped", lambda: self._stop_executions(workflow_id))
        return self._done(key, "kill_completed", reason)

    def kill_all(self, reason: str, *, stored: bool = False) -> list[Step]:
        self._run(
            "bridge rejects new jobs",
            lambda: self._switch(GLOBAL_SWITCH, killed=True, reason=reason, stored=stored),
        )
        self._run("n8n stopped", self._stop_n8n)
        self._run("running jobs failed", lambda: self._fail_jobs(None))
        return self._done(GLOBAL_SWITCH, "kill_completed", reason)

    def revive(self, key: str) -> list[Step]:
        self.registry.entry(key)  # an unknown key fails here, before anything changes
        self._run("n8n workflow activated", lambda: self._set_active(key, active=True))
        self._run("bridge accepts jobs", lambda: self._switch(key, killed=False, reason=None))
        return self._done(key, "revive_completed", None)

    def revive_all(self) -> list[Step]:
        self._run("n8n started and healthy", self._start_n8n)
        self._run("bridge accepts jobs", lambda: self._switch(GLOBAL_SWITCH, killed=False, reason=None))
        return self._done(GLOBAL_SWITCH, "revive_completed", None)

    # -- steps ----------------------------------------------------------------------------------------

    def _run(self, name: str, action: Callable[[], tuple[str, Any]]) -> Any:
        """Run one step, record and report it; returns its value (None when it failed)."""
        started = time.monotonic()
        try:
            detail, value = action()
            step = Step(name, True, f"{detail} ({time.monotonic() - started:.1f} s)")
        except N8nctlError as exc:
            detail, value = exc.what + (f": {exc.why}" if exc.why else ""), None
            step = Step(name, False, detail, exc.fix)
        self.steps.append(step)
        self._report(step)
        return value

    def _done(self, key: str, action: str, reason: str | None) -> list[Step]:
        details = {
            "reason": reason,
            "steps": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }
        with contextlib.suppress(N8nctlError):  # the store is down: the steps above already say so
            self.store.record_operator_event(key, action, actor=self.actor, details=details)
        return self.steps

    def _switch(
        self, key: str, *, killed: bool, reason: str | None, stored: bool = False
    ) -> tuple[str, None]:
        if not stored:
            self.store.set_switch(key, killed=killed, reason=reason, actor=self.actor)
        from n8nctl.adapters import probe

        by = " (stored by the bridge through its operator socket)" if stored else ""
        stored_text = f"switch {'on' if killed else 'off'} in the job store{by}"
        if probe.status(f"{self.settings.bridge_url}/healthz") is None:
            return f"{stored_text}; the bridge is not running and applies it when it starts", None
        if not until(lambda: self._bridge_reports(key, killed), VERIFY_TIMEOUT):
            raise N8nctlError(
                f"the bridge at {self.settings.bridge_url} does not report the switch",
                why=f"GET /v1/meta still shows the old state after {VERIFY_TIMEOUT:.0f} s",
                fix="Check the bridge uses the same BRIDGE_DATABASE_URL as this command.",
            )
        return f"{stored_text}; the bridge reports it", None

    def _bridge_reports(self, key: str, killed: bool) -> bool:
        """Whether the bridge's GET /v1/meta shows the switch of `key` as `killed`. With the global
        switch on, every workflow shows killed: reviving one workflow then counts as shown."""
        from n8nctl.adapters import probe

        meta = probe.json_body(f"{self.settings.bridge_url}/v1/meta")
        if not isinstance(meta, dict):
            return False
        if key == GLOBAL_SWITCH:
            return bool(meta["killed_all"]) == killed
        shown = next(bool(w["killed"]) for w in meta["workflows"] if w["workflow_key"] == key)
        return shown == killed or (meta["killed_all"] and not killed)

    def _api(self) -> N8nApi:
        from n8nctl.adapters.n8n_api import N8nApi

        return N8nApi(self.settings.n8n_url, api_key=self.settings.n8n_api_key_value())

    def _set_active(self, key: str, *, active: bool) -> tuple[str, str]:
        from n8nctl.workflows import WorkflowSync

        api = self._api()
        try:
            if active and not self.registry.entry(key).enabled:
                return "left inactive: the registry has it disabled", ""
            workflow_id = WorkflowSync(self.settings, self.registry, api).set_active(key, active=active)
        finally:
            api.close()
        state = "active, its webhook routed" if active else "inactive, its webhook no longer routed"
        return f"n8n workflow {workflow_id} {state}", workflow_id

    def _fail_jobs(self, key: str | None) -> tuple[str, None]:
        # kill --all: executions died with n8n; queued jobs wait for revive (or TIMEOUT)
        code, message, statuses = (
            ("N8N_KILLED", N8N_KILLED_MESSAGE, ("running",))
            if key is None
            else ("WORKFLOW_KILLED", WORKFLOW_KILLED_MESSAGE, ACTIVE)
        )
        keys = None if key is None else [key]
        failed = self.store.fail_active(keys, statuses=statuses, error_code=code, error_message=message)
        running = sum(job["status"] == "running" for job in failed)
        return f"{len(failed)} job(s) failed with {code} ({running} were running); callbacks queued", None

    def _stop_executions(self, workflow_id: str | None) -> tuple[str, None]:
        if not workflow_id:
            raise N8nctlError("not attempted", why="the workflow's n8n id is unknown (previous step failed)")
        api = self._api()
        try:
            stopped = api.stop_executions(workflow_id)
        except RemoteError as exc:
            if exc.status != 404:
                raise
            raise N8nctlError(
                "this n8n version cannot stop executions through its API",
                why="POST /api/v1/executions/stop answered 404 (it exists from n8n ~2.10)",
                fix="Running executions finish on their own; their results are recorded, not delivered.",
            ) from None
        finally:
            api.close()
        return f"{stopped} execution(s) stopped in n8n; late results are recorded, not delivered", None

    def _stop_n8n(self) -> tuple[str, None]:
        return self._service("stop", healthy=False, timeout=VERIFY_TIMEOUT), None

    def _start_n8n(self) -> tuple[str, None]:
        return self._service("start", healthy=True, timeout=N8N_START_TIMEOUT), None

    def _service(self, verb: str, *, healthy: bool, timeout: float) -> str:
        """Stop or start n8n, then check its health says so. Safe to repeat: stopping a stopped n8n
        errs in the service manager but is verified by health all the same."""
        from n8nctl.health import probe_services
        from n8nctl.runtimes import current

        error: N8nctlError | None = None
        runtime = current(self.settings)
        try:
            (runtime.stop_service if verb == "stop" else runtime.start_service)("n8n")
        except N8nctlError as exc:
            error, timeout = exc, min(timeout, 30.0)
        if until(lambda: probe_services(self.settings)["n8n"].healthy == healthy, timeout):
            return "n8n is running and healthy" if healthy else "n8n is stopped and no longer answers"
        raise error or N8nctlError(
            f"n8n is {'not healthy' if healthy else 'still answering'} {timeout:.0f} s after {verb}",
            fix="See n8nctl logs n8n; n8nctl status.",
        )
