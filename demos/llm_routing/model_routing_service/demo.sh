#!/usr/bin/env bash
# curl examples of the decision endpoint. Starts a gateway on this folder's
# config.yaml unless one already answers at $GATEWAY_URL; no API keys needed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../lib.sh"
ensure_gateway "$here/config.yaml"
run="demo-$(date +%s)-$$"  # fresh session ids, even against a gateway that has seen this demo before

decide() {  # decide "<title>" "<prompt>" [session-id]
  echo "── $1"
  local args=(-s "$GATEWAY_URL/routing/v1/chat/completions" -H 'Content-Type: application/json')
  [ $# -ge 3 ] && args+=(-H "X-Session-Id: $3")
  curl "${args[@]}" -d "{\"messages\": [{\"role\": \"user\", \"content\": \"$2\"}]}"
  echo
}

decide "1. code request" "Write a Python function that returns the n-th Fibonacci number."
decide "2. reasoning request" "Compare event sourcing and CRUD for an order system and explain which to pick."
decide "3. no route: the default model serves" "Hi there, how are you?"
decide "4. session 1, first call: routed and pinned" "Write a Go HTTP handler that returns JSON." "$run-1"
decide "5. session 1 again, different intent: still pinned" "Analyze the risks of our caching strategy in depth." "$run-1"
decide "6. another session 2: routed afresh" "Analyze the risks of our caching strategy in depth." "$run-2"
