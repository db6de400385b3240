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

"$python" - "$work" "$gateway" "$FAKE_PROVIDER_URL" "$question" <<'PY'
import json, sys, time, urllib.request
from pathlib import Path

work, gateway, fake, question = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
SOURCE = "header:session-id"


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


def thread_id(n):
    for line in (work / f"turn{n}.jsonl").read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("type") == "thread.started":
            return json.loads(line)["thread_id"]
    return None


upstream = [r for r in get(f"{fake}/_requests") if r["path"] == "/v1/responses"]
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
codex_sessions = [thread_id(1), thread_id(2)]

print("requests the gateway served (its request log):")
print(f"  {'#':>2}  turn  {'endpoint':<14} {'session source':<19} {'route':<16} {'model':<15} pinned")
for i, l in enumerate(lines, 1):
    print(f"  {i:>2}  {1 if i <= before2 else 2:<4}  {l['endpoint']:<14} {str(l['session_source']):<19} "
          f"{str(l['route']):<16} {l['model']:<15} {str(l['pinned']).lower()}"
          + ("" if l["status"] == 200 else f"  status {l['status']} {l.get('error', '')}"))

fake_models = sorted({r["body"].get("model") for r in upstream})
print(f"the fake provider received {len(upstream)} POST /v1/responses, asking for {', '.join(map(str, fake_models))}")

sessions = {l["session_id"] for l in lines}
models = {l["model"] for l in lines}
sid = next(iter(sessions)) if len(sessions) == 1 else None
pin = get(f"{gateway}/routing/v1/sessions/{sid}") if sid else {}
if "model" in pin:
    print(f"GET /routing/v1/sessions/{sid} → {pin['model']} (route {pin['route']}, {pin['seconds_left']:.0f} s left)")
alone = get(f"{gateway}/routing/v1/responses", {"model": "gpt-6.2-sol", "input": question})
print(f"turn 2's question on its own, with no session, would be routed to {alone.get('model')} "
      f"(route {alone.get('route')})")
# Each codex process first tries a WebSocket on GET /v1/responses; the gateway refuses it with 426
# (not a request-log line) and Codex falls back to HTTPS at once. A 404 would cost ~6 s of reconnects.
tries = [(work / f"turn{n}.err").read_text() for n in (1, 2)]
refused = [t.count("failed to connect to Responses WebSocket") for t in tries]
print(f"WebSocket attempts refused before falling back to HTTPS: turn 1 ×{refused[0]}, turn 2 ×{refused[1]}"
      + ("" if not any("Reconnecting" in t for t in tries) else " ⚠ with reconnect backoff (was it answered 426?)"))
for l in other:
    print(f"⚠ gateway log: {l}")

if not lines:
    fail("the gateway logged no requests")
if any(l["status"] != 200 for l in lines):
    fail("the gateway answered a request with an error status (table above)")
if len(lines) != len(upstream):
    fail(f"the gateway logged {len(lines)} requests but the fake provider received {len(upstream)}")
if before2 < 1 or before2 >= len(lines):
    fail(f"expected requests in both turns; turn 1 made {before2} of {len(lines)}")
if len(sessions) != 1 or codex_sessions != [sid, sid]:
    fail(f"expected one session, Codex's thread {codex_sessions}; the gateway saw {sorted(map(str, sessions))}")
if {l["session_source"] for l in lines} != {SOURCE}:
    fail(f"expected every session id to come from {SOURCE}")
if len(models) != 1:
    fail(f"the session was served by {len(models)} models: {', '.join(sorted(models))}")
model = next(iter(models))
unpinned = [i for i, l in enumerate(lines) if not l["pinned"]]
if len(unpinned) != 1 or unpinned[0] >= before2:
    fail("expected exactly one unpinned request (the session's first decision, in turn 1) and every other pinned")
if fake_models != [model.split("/", 1)[1]]:
    fail(f"the fake provider was asked for {fake_models}, not {model}")
if pin.get("model") != model:
    fail(f"the session's pin is {pin}, not {model}")
if any("Traceback" in l or "Exception in ASGI" in l for l in other):
    fail("the gateway logged an exception (⚠ lines above)")
print(f"✓ all {len(lines)} requests of session {sid} served by {model}")
PY
