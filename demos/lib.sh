# Shared by the demos' shell scripts: start what a demo needs, stop it on exit.
# Source it, then call `ensure_gateway CONFIG` (and `start_fake_provider` first
# when the demo forwards to providers and no API keys are set).

# $PYTHON (e.g. a venv's python) runs both the demo and the gateway; otherwise
# the `gateway` command on PATH, else python3 -m gateway.
python="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && command -v gateway >/dev/null 2>&1; then gateway_cmd=(gateway); else gateway_cmd=("$python" -m gateway); fi
_started=()
_cleanup() {
  for pid in "${_started[@]:-}"; do
    [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  done
}
trap _cleanup EXIT

_wait_for() {  # _wait_for URL PID LOG
  for _ in $(seq 1 150); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; return 1; }
    sleep 0.1
  done
  echo "$1 did not become ready; log: $3" >&2
  return 1
}

_free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Start the fake OpenAI/Anthropic provider on a free port; exports FAKE_PROVIDER_URL.
start_fake_provider() {
  local port log
  port="$(_free_port)"
  log="$(mktemp -t fake-provider.XXXXXX.log)"
  "$python" -m gateway.testing.fake_provider --port "$port" >"$log" 2>&1 &
  _started+=($!)
  export FAKE_PROVIDER_URL="http://127.0.0.1:${port}"
  _wait_for "$FAKE_PROVIDER_URL/healthz" "$!" "$log"
}

# Use the gateway at $GATEWAY_URL if one answers, else start one on CONFIG.
ensure_gateway() {
  local port="${GATEWAY_PORT:-12000}" log
  export GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:${port}}"
  curl -sf "$GATEWAY_URL/healthz" >/dev/null 2>&1 && return 0
  log="$(mktemp -t gateway-demo.XXXXXX.log)"
  "${gateway_cmd[@]}" up "$1" --port "$port" >"$log" 2>&1 &
  _started+=($!)
  _wait_for "$GATEWAY_URL/healthz" "$!" "$log"
}

# Sets FORWARDING_CONFIG for demos that forward: real providers when both keys
# are set, else the fake provider (started here) behind demos/config.offline.yaml.
choose_forwarding_config() {
  local demos
  demos="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  if [ -n "${OPENAI_API_KEY:-}" ] && [ -n "${ANTHROPIC_API_KEY:-}" ]; then
    FORWARDING_CONFIG="$demos/../config.yaml"
  else
    start_fake_provider
    FORWARDING_CONFIG="$demos/config.offline.yaml"
  fi
}
