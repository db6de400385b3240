#!/usr/bin/env bash
# Run the agent loop demo: against real providers when OPENAI_API_KEY and
# ANTHROPIC_API_KEY are set, else against the fake provider, offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"
choose_forwarding_config
ensure_gateway "$FORWARDING_CONFIG"
"$python" "$here/agent.py"
