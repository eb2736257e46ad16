"""One bridge process's view of the kill-switch: the store's switches, re-read at most every
CACHE_SECONDS, and turned on at once through the operator socket (docs/adr/0062)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from n8nctl.registry import Registry
from n8nctl.store import Store
from n8nctl.store.schema import Row
from n8nctl.store.store import GLOBAL_SWITCH

log = logging.getLogger("n8nctl.bridge")

CACHE_SECONDS = 0.1  # how stale a replica's view of the kill-switch may be


class SwitchView:
    def __init__(self, store: Store, registry: Registry) -> None:
        self._store, self._registry = store, registry
        self._read: tuple[float, dict[str, Row]] = (-math.inf, {})

    async def killed(self) -> tuple[bool, set[str]]:
        """Whether the global switch is on, and the workflows whose own switch is."""
        read_at, states = self._read
        if time.monotonic() - read_at > CACHE_SECONDS:
            states = await asyncio.to_thread(self._store.switch_states)
            self._read = (time.monotonic(), states)
        killed = {key for key, row in states.items() if row["killed"]}
        return GLOBAL_SWITCH in killed, killed - {GLOBAL_SWITCH}

    async def turn_on(self, workflow_key: str | None, *, reason: str, actor: str) -> dict[str, Any]:
        """Turn a switch on (None: the global one) as `n8nctl kill` would store it, and re-read the
        view in the same thread hop, so no job this replica accepts after the answer is for a killed
        workflow. Other replicas follow within CACHE_SECONDS. The operator socket's answer."""
        key = GLOBAL_SWITCH if workflow_key is None else workflow_key
        if key not in self._registry.workflows and key != GLOBAL_SWITCH:
            return {"ok": False, "error": f"no workflow {key!r} in this bridge's registry"}

        def store_and_read() -> dict[str, Row]:
            self._store.set_switch(key, killed=True, reason=reason, actor=actor)
            return self._store.switch_states()

        try:
            self._read = (time.monotonic(), await asyncio.to_thread(store_and_read))
        except Exception:
            log.exception("the operator socket could not store the kill-switch of %s", key)
            return {"ok": False, "error": "the bridge could not store the switch"}
        log.warning("kill-switch of %s turned on through the operator socket by %s", key, actor)
        return {"ok": True}
