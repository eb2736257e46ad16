"""Kill-switches and operator events."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from n8nctl.store.core import (
    StoreBase,
    dialect_insert,
    operator_event,
    utcnow,
)
from n8nctl.store.schema import Row, switches


class Switches(StoreBase):
    def switch_states(self) -> dict[str, Row]:
        with self._read() as conn:
            return {r["workflow_key"]: dict(r) for r in conn.execute(sa.select(switches)).mappings()}

    def set_switch(self, workflow_key: str, *, killed: bool, reason: str | None, actor: str) -> None:
        """Turn a kill-switch on or off ('*': the global one), audited with who and why."""
        values = {"killed": killed, "reason": reason, "actor": actor, "changed_at": utcnow()}
        with self._write() as conn:
            # an upsert: two operators flipping one switch at once must not collide on the key
            conn.execute(
                dialect_insert(conn, switches)
                .values(workflow_key=workflow_key, **values)
                .on_conflict_do_update(index_elements=[switches.c.workflow_key], set_=values)
            )
            operator_event(conn, workflow_key, "killed" if killed else "revived", actor, {"reason": reason})

    def record_operator_event(self, workflow_key: str, action: str, *, actor: str, details: Any) -> None:
        """An audit event of an operator action on a workflow ('*': all), not tied to one job."""
        with self._write() as conn:
            operator_event(conn, workflow_key, action, actor, details)
