#!/usr/bin/env bash
# Templates -> n8n: create or update each registry workflow, keep ids, activate. Thin wrapper (blueprint section 7).
# Example: scripts/import-workflows.sh            (all)   scripts/import-workflows.sh content_pipeline
exec "$(dirname "${BASH_SOURCE[0]}")/n8nctl" workflows import "$@"
