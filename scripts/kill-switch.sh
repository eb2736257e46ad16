#!/usr/bin/env bash
# Kill-switch for responders with only a shell (blueprint PR-8): a thin wrapper around n8nctl.
#   scripts/kill-switch.sh kill tiktok_live_helper "INC-42: posting duplicates"
#   scripts/kill-switch.sh kill --all "INC-43: n8n leaking memory"
#   scripts/kill-switch.sh revive tiktok_live_helper      scripts/kill-switch.sh revive --all
# Exit code is n8nctl's: 0 every step worked, 1 a step failed (the output says which and what to do).
set -euo pipefail
usage() { echo "usage: $0 kill (WORKFLOW_KEY|--all) REASON | revive (WORKFLOW_KEY|--all)" >&2; exit 2; }
n8nctl="$(dirname "${BASH_SOURCE[0]}")/n8nctl"
case "${1:-}" in
  kill) [[ $# -eq 3 ]] || usage; exec "$n8nctl" kill "$2" --reason "$3" ;;
  revive) [[ $# -eq 2 ]] || usage; exec "$n8nctl" revive "$2" ;;
  *) usage ;;
esac
