#!/usr/bin/env bash
# Nightly backup for cron (docs/RUNBOOK.md "Backups"): a thin wrapper around n8nctl.
#   scripts/backup.sh            back up to backups/, then prune (executions, audit, old backups)
#   scripts/backup.sh --upload   the same, the backup uploaded to S3 (N8NCTL_BACKUP_S3_*) first
# Exit code is n8nctl's (docs/cli.md): 0 ok, 1 a step failed (the one line names it), 5 S3 or a
# service did not answer, 8 another backup/restore/prune is running. stdout: one JSON line each.
set -euo pipefail
n8nctl="$(dirname "${BASH_SOURCE[0]}")/n8nctl"
"$n8nctl" backup "$@" --quiet --json
exec "$n8nctl" prune --quiet --json
