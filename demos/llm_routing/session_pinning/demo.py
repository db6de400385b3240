#!/usr/bin/env python3
"""Session pinning demo: one agent loop, run without and then with X-Session-Id.

Sends five agent steps of mixed intent to the gateway's decision endpoint
(/routing/v1/chat/completions; no LLM is called) and prints the model chosen
for each. Uses only the standard library.

    GATEWAY_URL=http://127.0.0.1:12000 python3 demo.py
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
import uuid

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:12000").rstrip("/")

# An agent building a task management app, alternating between writing code
# and reasoning about it: (short label, full prompt).
STEPS = [
    ("Design a REST API schema…",
     "Design a REST API schema for a task management app with users, projects and tasks."),
    ("Analyze SQL vs NoSQL…",
     "Analyze SQL vs NoSQL trade-offs for this system, considering consistency, scale and query patterns."),
    ("Write SQLAlchemy models…",
     "Write the SQLAlchemy database models for users, projects and tasks."),
    ("Review API for security…",
     "Review the API design for security vulnerabilities and explain the risks."),
    ("Implement JWT auth…",
     "Implement JWT authentication middleware for the API."),
]

HEAVY = "═" * 66
LIGHT = "─" * 66


def decide(prompt: str, session_id: str | None) -> dict:
    headers = {"Content-Type": "application/json"}
    if session_id:
        headers["X-Session-Id"] = session_id
    body = json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(f"{GATEWAY_URL}/routing/v1/chat/completions", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def run(title: str, session_id: str | None) -> list[str]:
    print(HEAVY)
    print(title)
    print(LIGHT)
    models = []
    for i, (label, prompt) in enumerate(STEPS, start=1):
        decision = decide(prompt, session_id)
        models.append(decision["model"])
        pinned = f" (pinned={str(decision['pinned']).lower()})" if session_id else ""
        print(f"Step {i}: {label} → {decision['model']}{pinned}")
    return models


def main() -> int:
    try:
        unpinned = run("Run 1: WITHOUT Session Pinning", None)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot reach the gateway at {GATEWAY_URL} ({exc}); start it with "
              f"`gateway up config.yaml` or run ./demo.sh", file=sys.stderr)
        return 1
    distinct = list(dict.fromkeys(unpinned))
    if len(distinct) > 1:
        print(f"✗ Models varied: {', '.join(distinct)}")
    else:
        print(f"  All steps happened to route to {distinct[0]}")

    session_id = str(uuid.uuid4())
    pinned = run(f"Run 2: WITH Session Pinning (X-Session-Id: {session_id[:8]}-…)", session_id)
    if len(set(pinned)) == 1:
        print(f"✓ All {len(pinned)} steps routed to {pinned[0]}")
        return 0
    print(f"✗ Pinning failed: models {', '.join(dict.fromkeys(pinned))}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
