#!/usr/bin/env bash
# Codex through the gateway, offline: one session of two turns (`codex exec`
# with a coding task, then `codex exec resume --last` with a reasoning
# question) against the fake provider. Prints every request the gateway served
# (from its request log) and checks that both turns went to the one model the
# session was pinned to. Exit 0 with a ✓ line, or 1 with a ✗ line saying what broke.
#
#   demos/codex/setup.sh && PYTHON=.venv/bin/python demos/codex/demo.sh
#
# CODEX_BIN overrides the Codex binary (default: what setup.sh installed,
# under AGENT_CLIENTS_DIR if that is set);
# GATEWAY_PORT fixes the gateway's port (default: a free one).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"

codex="${CODEX_BIN:-${AGENT_CLIENTS_DIR:-$here/../.clients}/codex/bin/codex}"
if [ ! -x "$codex" ]; then
  echo "Codex is not installed at $codex: run demos/codex/setup.sh first (or set CODEX_BIN)" >&2
  exit 2
fi

task="Write a Python function that merges two sorted lists into one sorted list."
question="Analyze the trade-offs between SQL and NoSQL databases for a high-traffic system and explain which to choose."

work="$(mktemp -d -t codex-demo.XXXXXX)"
mkdir -p "$work/home/.codex" "$work/project"
trap '_cleanup; rm -rf "$work"' EXIT  # lib.sh's cleanup stops what it started

start_fake_provider
port="${GATEWAY_PORT:-$(_free_port)}"
gateway="http://127.0.0.1:$port"
"${gateway_cmd[@]}" up "$here/config.yaml" --port "$port" \
  --log-format json >"$work/gateway.log" 2>&1 &
_started+=($!)
_wait_for "$gateway/healthz" "$!" "$work/gateway.log"

# Codex with a fresh HOME and CODEX_HOME and nothing from this shell's
# environment (no real keys, no proxies). It is logged in with a dummy API key
# (without a login Codex sends no Authorization header at all).
run_codex() {
  (cd "$work/project" && env -i PATH="$PATH" HOME="$work/home" CODEX_HOME="$work/home/.codex" \
    LANG=C.UTF-8 TERM=dumb timeout 90 "$codex" "$@")
}
if ! echo dummy | run_codex login --with-api-key >"$work/login.out" 2>&1; then
  echo "✗ codex login --with-api-key failed:" >&2
  cat "$work/login.out" >&2
  exit 1
fi

version="$(run_codex --version 2>/dev/null | awk 'NR == 1 {print $2}')"
echo "Codex $version → gateway $gateway/v1 → fake provider (offline, no API keys)"
echo

upstream_count() {  # requests the fake provider has received so far (recorded as they arrive)
  curl -sf "$FAKE_PROVIDER_URL/_requests" | "$python" -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

turn() {  # turn N SHOWN ARGS...: run one `codex exec`; keep its JSONL events and how many requests came before it
  local n="$1" shown="$2"; shift 2
  upstream_count >"$work/before$n"
  echo "turn $n: codex exec $shown"
  if ! run_codex exec -c openai_base_url="$gateway/v1" --skip-git-repo-check --json "$@" \
        </dev/null >"$work/turn$n.jsonl" 2>"$work/turn$n.err"; then
    echo "✗ codex failed on turn $n; its output:" >&2
    cat "$work/turn$n.jsonl" "$work/turn$n.err" >&2
    echo "--- gateway log:" >&2
    cat "$work/gateway.log" >&2
    exit 1
  fi
  # The last agent message of the turn (`--json` prints one event per line).
  "$python" -c '
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
said = [e["item"]["text"] for e in events if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]
print("  → " + (said[-1] if said else "(no answer)"))' "$work/turn$n.jsonl"
}
turn 1 "\"$task\"" "$task"
turn 2 "resume --last \"$question\"" resume --last "$question"
echo

"$python" - "$here/.." "$work" "$gateway" "$FAKE_PROVIDER_URL" "$question" <<'PY'
# The report (shared with the Claude Code demo, see demos/agent_cli_report.py) with Codex's own parts:
# its session header, its thread id per turn, and how its WebSocket attempts went.
import json, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import agent_cli_report as report

work, gateway, fake, question = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def thread_id(n):
    """The thread (session) id Codex announced in turn n's JSONL events."""
    for line in (work / f"turn{n}.jsonl").read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("type") == "thread.started":
            return json.loads(line)["thread_id"]
    return None


served = report.read_served(work, gateway, fake, "/v1/responses")
codex_sessions = [thread_id(1), thread_id(2)]
report.print_table(served, widths=(14, 19, 15))
report.print_upstream(served)
report.print_routing(served, {"model": "gpt-6.2-sol", "input": question})
# Each codex process first tries a WebSocket on GET /v1/responses; the gateway refuses it with 426
# (not a request-log line) and Codex falls back to HTTPS at once. A 404 would cost ~6 s of reconnects.
tries = [(work / f"turn{n}.err").read_text() for n in (1, 2)]
refused = [t.count("failed to connect to Responses WebSocket") for t in tries]
print(f"WebSocket attempts refused before falling back to HTTPS: turn 1 ×{refused[0]}, turn 2 ×{refused[1]}"
      + ("" if not any("Reconnecting" in t for t in tries) else " ⚠ with reconnect backoff (was it answered 426?)"))
report.print_warnings(served)
report.check(served, "header:session-id", codex_sessions, f"Codex's thread {codex_sessions}")
PY
