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

"$python" - "$work" "$gateway" "$FAKE_PROVIDER_URL" "$question" <<'PY'
import json, sys, time, urllib.request
from pathlib import Path

work, gateway, fake, question = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
SOURCE = "header:x-claude-code-session-id"


def get(url, data=None):
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": e.read().decode(errors="replace")}


def fail(why):
    print(f"✗ {why}")
    print("--- gateway log:")
    print((work / "gateway.log").read_text())
    sys.exit(1)


upstream = [r for r in get(f"{fake}/_requests") if r["path"] == "/v1/messages"]
# The request log is written in batches (every 0.2 s): wait for a line per request the fake saw.
for _ in range(50):
    log_text = (work / "gateway.log").read_text()
    lines = [json.loads(l) for l in log_text.splitlines() if '"gateway.request"' in l]
    if len(lines) >= len(upstream):
        break
    time.sleep(0.1)
other = [l for l in log_text.splitlines() if l.strip() and '"gateway.request"' not in l
         and ("Traceback" in l or "ERROR" in l or "WARNING" in l or "Exception" in l)]
before2 = int((work / "before2").read_text().strip() or 0)
results = [json.loads((work / f"turn{n}.json").read_text()) for n in (1, 2)]
claude_session = results[0]["session_id"]

print("requests the gateway served (its request log):")
print(f"  {'#':>2}  turn  {'endpoint':<13} {'session source':<32} {'route':<16} {'model':<36} pinned")
for i, l in enumerate(lines, 1):
    print(f"  {i:>2}  {1 if i <= before2 else 2:<4}  {l['endpoint']:<13} {str(l['session_source']):<32} "
          f"{str(l['route']):<16} {l['model']:<36} {str(l['pinned']).lower()}"
          + ("" if l["status"] == 200 else f"  status {l['status']} {l.get('error', '')}"))

kinds = {"title request": 0, "user prompt": 0, "tool result": 0}
for r in upstream:
    body = r["body"]
    last = body["messages"][-1]
    if not body.get("tools") and "title" in json.dumps(body.get("output_config", {})):
        kinds["title request"] += 1
    elif isinstance(last.get("content"), list) and any(b.get("type") == "tool_result" for b in last["content"]):
        kinds["tool result"] += 1
    else:
        kinds["user prompt"] += 1
fake_models = sorted({r["body"].get("model") for r in upstream})
print(f"the fake provider received {len(upstream)} POST /v1/messages "
      f"({', '.join(f'{n} {k}' + ('s' if n > 1 else '') for k, n in kinds.items() if n)}), "
      f"asking for {', '.join(map(str, fake_models))}")

sessions = {l["session_id"] for l in lines}
models = {l["model"] for l in lines}
sid = next(iter(sessions)) if len(sessions) == 1 else None
pin = get(f"{gateway}/routing/v1/sessions/{sid}") if sid else {}
if "model" in pin:
    print(f"GET /routing/v1/sessions/{sid} → {pin['model']} (route {pin['route']}, {pin['seconds_left']:.0f} s left)")
alone = get(f"{gateway}/routing/v1/messages",
            {"model": "claude-opus-4-8", "max_tokens": 1024, "messages": [{"role": "user", "content": question}]})
print(f"turn 2's question on its own, with no session, would be routed to {alone.get('model')} "
      f"(route {alone.get('route')})")
for l in other:
    print(f"⚠ gateway log: {l}")

if any(r.get("is_error") for r in results):
    fail(f"Claude Code reported an error: {[r.get('result') for r in results]}")
if not lines:
    fail("the gateway logged no requests")
if any(l["status"] != 200 for l in lines):
    fail("the gateway answered a request with an error status (table above)")
if len(lines) != len(upstream):
    fail(f"the gateway logged {len(lines)} requests but the fake provider received {len(upstream)}")
if before2 < 1 or before2 >= len(lines):
    fail(f"expected requests in both turns; turn 1 made {before2} of {len(lines)}")
if len(sessions) != 1 or sid != claude_session or results[1]["session_id"] != claude_session:
    fail(f"expected one session, Claude Code's {claude_session}; the gateway saw {sorted(map(str, sessions))}")
if {l["session_source"] for l in lines} != {SOURCE}:
    fail(f"expected every session id to come from {SOURCE}")
if len(models) != 1:
    fail(f"the session was served by {len(models)} models: {', '.join(sorted(models))}")
model = next(iter(models))
unpinned = [i for i, l in enumerate(lines) if not l["pinned"]]
if len(unpinned) != 1 or unpinned[0] >= before2:
    fail("expected exactly one unpinned request (the session's first decision, in turn 1) and every other pinned")
if not all(l["pinned"] for l in lines[before2:]):
    fail("a request of turn 2 (--continue) was not pinned")
if fake_models != [model.split("/", 1)[1]]:
    fail(f"the fake provider was asked for {fake_models}, not {model}")
if pin.get("model") != model:
    fail(f"the session's pin is {pin}, not {model}")
if any("Traceback" in l or "Exception in ASGI" in l for l in other):
    fail("the gateway logged an exception (⚠ lines above)")
print(f"✓ all {len(lines)} requests of session {sid} served by {model}")
PY
