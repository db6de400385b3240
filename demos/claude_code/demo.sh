#!/usr/bin/env bash
# Claude Code through the gateway, offline: one session of two `claude -p`
# turns (a coding task, then a reasoning question with --continue) against
# the fake provider. Prints every request the gateway served (from its request
# log) and checks that all of them went to the one model the session was
# pinned to. Exit 0 with a ✓ line, or 1 with a ✗ line saying what broke.
#
#   demos/claude_code/setup.sh && PYTHON=.venv/bin/python demos/claude_code/demo.sh
#
# CLAUDE_BIN overrides the Claude Code binary (default: what setup.sh
# installed, under AGENT_CLIENTS_DIR if that is set); GATEWAY_PORT fixes the
# gateway's port (default: a free one).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"

claude="${CLAUDE_BIN:-${AGENT_CLIENTS_DIR:-$here/../.clients}/claude-code/bin/claude}"
if [ ! -x "$claude" ]; then
  echo "Claude Code is not installed at $claude: run demos/claude_code/setup.sh first (or set CLAUDE_BIN)" >&2
  exit 2
fi

task="Write a Python function that merges two sorted lists into one sorted list."
question="Analyze the trade-offs between SQL and NoSQL databases for a high-traffic system and explain which to choose."
tools="Bash,Read"  # a small tool set keeps the agent loop short (see README)

work="$(mktemp -d -t claude-code-demo.XXXXXX)"
mkdir -p "$work/home" "$work/project"
trap '_cleanup; rm -rf "$work"' EXIT  # lib.sh's cleanup stops what it started

start_fake_provider
port="${GATEWAY_PORT:-$(_free_port)}"
gateway="http://127.0.0.1:$port"
"${gateway_cmd[@]}" up "$here/config.yaml" --port "$port" \
  --log-format json >"$work/gateway.log" 2>&1 &
_started+=($!)
_wait_for "$gateway/healthz" "$!" "$work/gateway.log"

# Claude Code with a fresh HOME, nothing from this shell's environment (no real
# keys, no proxies), a dummy key, and no telemetry, error reports or updates.
run_claude() {
  (cd "$work/project" && env -i PATH="$PATH" HOME="$work/home" LANG=C.UTF-8 TERM=dumb \
    ANTHROPIC_BASE_URL="$gateway" ANTHROPIC_API_KEY=dummy \
    DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1 \
    timeout 90 "$claude" -p "$@" --tools "$tools" --output-format json </dev/null)
}

version="$(HOME="$work/home" "$claude" --version 2>/dev/null | awk 'NR == 1 {print $1}')"
echo "Claude Code $version → gateway $gateway → fake provider (offline, no API keys)"
echo

upstream_count() {  # requests the fake provider has received so far (recorded as they arrive)
  curl -sf "$FAKE_PROVIDER_URL/_requests" | "$python" -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

turn() {  # turn N ARGS...: run one turn; keep its JSON result and how many requests came before it
  local n="$1"; shift
  upstream_count >"$work/before$n"
  printf 'turn %s: claude -p "%s"%s --tools %s\n' "$n" "$1" "${2:+ $2}" "$tools"
  if ! run_claude "$@" >"$work/turn$n.json" 2>"$work/turn$n.err"; then
    echo "✗ claude failed on turn $n; its output:" >&2
    cat "$work/turn$n.json" "$work/turn$n.err" >&2
    echo "--- gateway log:" >&2
    cat "$work/gateway.log" >&2
    exit 1
  fi
}
answer() {  # what Claude Code printed for turn N (its JSON result)
  "$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); n = r["num_turns"]; print("  → %s  (%d model call%s)" % (r["result"], n, "" if n == 1 else "s"))' "$work/turn$1.json"
}

turn 1 "$task"
answer 1
turn 2 "$question" --continue
answer 2
echo

"$python" - "$here/.." "$work" "$gateway" "$FAKE_PROVIDER_URL" "$question" <<'PY'
# The report (shared with the Codex demo, see demos/agent_cli_report.py) with Claude Code's own parts:
# its session header, its session_id per turn, its kinds of request, an error it reported itself.
import json, sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import agent_cli_report as report

work, gateway, fake, question = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def kind(body):
    """A request of Claude Code's: the session's title request (no tools, asks for a title), a tool result, or a prompt."""
    last = body["messages"][-1]
    if not body.get("tools") and "title" in json.dumps(body.get("output_config", {})):
        return "title request"
    if isinstance(last.get("content"), list) and any(b.get("type") == "tool_result" for b in last["content"]):
        return "tool result"
    return "user prompt"


served = report.read_served(work, gateway, fake, "/v1/messages")
results = [json.loads((work / f"turn{n}.json").read_text()) for n in (1, 2)]
report.print_table(served, widths=(13, 32, 36))
report.print_upstream(served, kind, kinds=("title request", "user prompt", "tool result"))
report.print_routing(served, {"model": "claude-opus-4-8", "max_tokens": 1024,
                              "messages": [{"role": "user", "content": question}]})
report.print_warnings(served)
if any(r.get("is_error") for r in results):
    report.fail(work, f"Claude Code reported an error: {[r.get('result') for r in results]}")
report.check(served, "header:x-claude-code-session-id", [r["session_id"] for r in results],
             f"Claude Code's {results[0]['session_id']}")
PY
