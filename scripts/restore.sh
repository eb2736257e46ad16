#!/usr/bin/env bash
# Restore a backup (docs/RUNBOOK.md "Disaster recovery"): a thin wrapper around n8nctl.
#   scripts/restore.sh BACKUP            BACKUP: an id in backups/, a folder, or s3://bucket/prefix/<id>
#   scripts/restore.sh BACKUP --dry-run  check it and print the plan only
# Exit code is n8nctl's: 2 refused (another n8n version or key; the line says why, --force overrides),
# 7 not restorable (checksum, decryption), 1 a step failed (the line names it).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 BACKUP [--dry-run|--force]" >&2; exit 2; }
exec "$(dirname "${BASH_SOURCE[0]}")/n8nctl" restore "$@"
