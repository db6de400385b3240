"""The report both agent CLI demos (demos/claude_code, demos/codex) print after their two turns.

Each demo.sh runs its CLI twice against a gateway started with `--log-format
json` and the fake provider, then hands over to a short Python heredoc that
imports this module. The module holds what the two reports have in common:
reading the requests the gateway served from its request log, the table of
them, the session pin and the "question on its own" lines, and the checks
that one session was served by one pinned model. The heredoc supplies only
what is particular to its CLI: the endpoint it calls, the session source the
gateway should report, the session ids the CLI itself reported, how to tell
its kinds of request apart, and the body to ask the decision endpoint about.

It relies on the demo's work directory holding `gateway.log` (the gateway's
output) and `before2` (how many requests the fake provider had received when
turn 2 started, which splits the table into turns).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence


def get(url: str, data: dict | None = None) -> dict | list:
    """GET url, or POST data as JSON; the parsed answer, or the error status and body (the report shows both)."""
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return {"status": e.code, "error": e.read().decode(errors="replace")}


def fail(work: Path, why: str) -> None:
    """Print a ✗ line and the whole gateway log (to see what went wrong), then exit 1."""
    print(f"✗ {why}")
    print("--- gateway log:")
    print((work / "gateway.log").read_text())
    sys.exit(1)


@dataclass
class Served:
    """What the gateway served in one demo run, next to what the fake provider received."""

    work: Path
    gateway: str
    path: str  # the endpoint the CLI calls, e.g. /v1/messages
    upstream: list[dict]  # the fake provider's record of the requests to that endpoint
    lines: list[dict]  # the gateway's request-log lines, in order
    other: list[str]  # gateway log lines that look like errors or warnings
    before2: int  # requests made before turn 2 started

    @property
    def sessions(self) -> set:
        return {l["session_id"] for l in self.lines}

    @property
    def models(self) -> set:
        return {l["model"] for l in self.lines}

    @property
    def sid(self) -> str | None:
        """The session id, when every request carried the same one."""
        return next(iter(self.sessions)) if len(self.sessions) == 1 else None

    @property
    def fake_models(self) -> list:
        return sorted({r["body"].get("model") for r in self.upstream})

    @cached_property
    def pin(self) -> dict:
        """The gateway's pin for the session (asked once, then reused by the checks)."""
        return get(f"{self.gateway}/routing/v1/sessions/{self.sid}") if self.sid else {}


def read_served(work: Path, gateway: str, fake: str, path: str) -> Served:
    """Read the fake provider's requests to `path` and the gateway's matching request-log lines."""
    upstream = [r for r in get(f"{fake}/_requests") if r["path"] == path]
    # The gateway writes its request log in batches (every 0.2 s), so the last
    # lines may lag the answers: wait until there is one per request the fake saw.
    for _ in range(50):
        log_text = (work / "gateway.log").read_text()
        lines = [json.loads(l) for l in log_text.splitlines() if '"gateway.request"' in l]
        if len(lines) >= len(upstream):
            break
        time.sleep(0.1)
    other = [l for l in log_text.splitlines() if l.strip() and '"gateway.request"' not in l
             and ("Traceback" in l or "ERROR" in l or "WARNING" in l or "Exception" in l)]
    before2 = int((work / "before2").read_text().strip() or 0)
    return Served(work, gateway, path, upstream, lines, other, before2)


def print_table(served: Served, widths: tuple[int, int, int]) -> None:
    """One row per request; widths are the endpoint, session source and model columns' (each demo's own)."""
    endpoint_w, source_w, model_w = widths
    print("requests the gateway served (its request log):")
    print(f"  {'#':>2}  turn  {'endpoint':<{endpoint_w}} {'session source':<{source_w}} {'route':<16} "
          f"{'model':<{model_w}} pinned")
    for i, l in enumerate(served.lines, 1):
        print(f"  {i:>2}  {1 if i <= served.before2 else 2:<4}  {l['endpoint']:<{endpoint_w}} "
              f"{str(l['session_source']):<{source_w}} {str(l['route']):<16} {l['model']:<{model_w}} "
              f"{str(l['pinned']).lower()}"
              + ("" if l["status"] == 200 else f"  status {l['status']} {l.get('error', '')}"))


def print_upstream(served: Served, classify: Callable[[dict], str] | None = None,
                   kinds: Sequence[str] = ()) -> None:
    """What the fake provider received; with classify (request body → one of kinds), how many of each kind."""
    counts = ""
    if classify:
        n_of = dict.fromkeys(kinds, 0)
        for r in served.upstream:
            n_of[classify(r["body"])] += 1
        counts = f" ({', '.join(f'{n} {k}' + ('s' if n > 1 else '') for k, n in n_of.items() if n)})"
    print(f"the fake provider received {len(served.upstream)} POST {served.path}{counts}, "
          f"asking for {', '.join(map(str, served.fake_models))}")


def print_routing(served: Served, alone: dict) -> None:
    """The session's pin, and where the decision endpoint would send turn 2's question (the body `alone`) with no session."""
    pin = served.pin
    if "model" in pin:
        print(f"GET /routing/v1/sessions/{served.sid} → {pin['model']} (route {pin['route']}, "
              f"{pin['seconds_left']:.0f} s left)")
    decision = get(f"{served.gateway}/routing{served.path}", alone)  # e.g. /routing/v1/messages
    print(f"turn 2's question on its own, with no session, would be routed to {decision.get('model')} "
          f"(route {decision.get('route')})")


def print_warnings(served: Served) -> None:
    for l in served.other:
        print(f"⚠ gateway log: {l}")


def check(served: Served, source: str, cli_sessions: list, cli_says: str) -> None:
    """The checks both demos make; exit 1 with a ✗ line at the first that fails, else print the ✓ line.

    source is the session source every request should have; cli_sessions the
    session id the CLI reported for each turn (all must be the gateway's one
    session id); cli_says names them in the failure message.
    """
    lines, before2 = served.lines, served.before2
    if not lines:
        fail(served.work, "the gateway logged no requests")
    if any(l["status"] != 200 for l in lines):
        fail(served.work, "the gateway answered a request with an error status (table above)")
    if len(lines) != len(served.upstream):
        fail(served.work, f"the gateway logged {len(lines)} requests but the fake provider received "
                          f"{len(served.upstream)}")
    if before2 < 1 or before2 >= len(lines):
        fail(served.work, f"expected requests in both turns; turn 1 made {before2} of {len(lines)}")
    sid = served.sid
    if len(served.sessions) != 1 or cli_sessions != [sid] * len(cli_sessions):
        fail(served.work, f"expected one session, {cli_says}; the gateway saw {sorted(map(str, served.sessions))}")
    if {l["session_source"] for l in lines} != {source}:
        fail(served.work, f"expected every session id to come from {source}")
    if len(served.models) != 1:
        fail(served.work, f"the session was served by {len(served.models)} models: {', '.join(sorted(served.models))}")
    model = next(iter(served.models))
    # One unpinned request, in turn 1, implies every request of turn 2 was pinned.
    unpinned = [i for i, l in enumerate(lines) if not l["pinned"]]
    if len(unpinned) != 1 or unpinned[0] >= before2:
        fail(served.work, "expected exactly one unpinned request (the session's first decision, in turn 1) "
                          "and every other pinned")
    if served.fake_models != [model.split("/", 1)[1]]:
        fail(served.work, f"the fake provider was asked for {served.fake_models}, not {model}")
    if served.pin.get("model") != model:
        fail(served.work, f"the session's pin is {served.pin}, not {model}")
    if any("Traceback" in l or "Exception in ASGI" in l for l in served.other):
        fail(served.work, "the gateway logged an exception (⚠ lines above)")
    print(f"✓ all {len(lines)} requests of session {sid} served by {model}")
