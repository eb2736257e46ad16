from __future__ import annotations

from alembic import context

from n8nctl.store.schema import metadata

if context.is_offline_mode():  # `n8nctl bridge migrate --sql`: statements for a dialect, no connection
    context.configure(
        dialect_name=context.config.attributes["dialect"],
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
else:
    context.configure(
        connection=context.config.attributes["connection"], target_metadata=metadata, render_as_batch=True
    )
with context.begin_transaction():
    context.run_migrations()
