#!/usr/bin/env bash
# n8n -> templates, in the normal form (an unchanged workflow exports byte-identical). Thin wrapper.
# Example: scripts/export-workflows.sh            scripts/export-workflows.sh --dest backups/workflows
exec "$(dirname "${BASH_SOURCE[0]}")/n8nctl" workflows export "$@"
