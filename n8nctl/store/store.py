"""Store: every read and write of bridge state, over SQLAlchemy Core, synchronous.

The async bridge calls these methods in worker threads. Each method is one transaction, so a crash
between two methods leaves a consistent state that the workers pick up again at start. One noun per
module: jobs (intake, reads), dispatch, outcomes, reconcile, outbox, switches, figures, retention
(prune), snapshot (backup and restore), over core (engines, shared helpers).
"""

from __future__ import annotations

from n8nctl.store.core import ACTIVE, GLOBAL_SWITCH, NewJob, SubmitOutcome, utcnow
from n8nctl.store.dispatch import Dispatch
from n8nctl.store.figures import Figures
from n8nctl.store.jobs import Jobs
from n8nctl.store.outbox import Outbox
from n8nctl.store.outcomes import Outcomes
from n8nctl.store.reconcile import Reconcile
from n8nctl.store.retention import Retention
from n8nctl.store.snapshot import Snapshot
from n8nctl.store.switches import Switches

__all__ = ["ACTIVE", "GLOBAL_SWITCH", "NewJob", "Store", "SubmitOutcome", "utcnow"]


class Store(Jobs, Dispatch, Outcomes, Reconcile, Outbox, Switches, Figures, Retention, Snapshot):
    """The bridge's durable state on SQLite or PostgreSQL (one schema, one code path)."""
