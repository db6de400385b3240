#!/usr/bin/env bash
# Run the session pinning demo: starts a gateway on this folder's config.yaml
# unless one already answers at $GATEWAY_URL, runs demo.py, and stops only what
# it started. No API keys needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../lib.sh"
ensure_gateway "$here/config.yaml"
"$python" "$here/demo.py"
