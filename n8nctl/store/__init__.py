"""The bridge's durable state: jobs, the callback outbox, the audit trail and kill switches."""

from n8nctl.store.store import NewJob, Store, SubmitOutcome

__all__ = ["NewJob", "Store", "SubmitOutcome"]
