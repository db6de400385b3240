#!/usr/bin/env python3
"""The official OpenAI SDK pointed at the gateway: one session, streamed and non-streamed calls.

    GATEWAY_URL=http://127.0.0.1:12000 python3 demo.py

Prints, for each step, the model that served it (from the gateway's
X-Router-* response headers) and the start of the answer.
"""

from __future__ import annotations

import os
import sys
import uuid

from openai import OpenAI

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:12000").rstrip("/")


def main() -> int:
    session_id = f"sdk-demo-{uuid.uuid4()}"
    client = OpenAI(
        base_url=f"{GATEWAY_URL}/v1",
        api_key="not-used",  # provider keys live in the gateway's config
        default_headers={"X-Session-Id": session_id},
    )
    print(f"session {session_id}")
    served = []

    # Step 1: non-streamed. with_raw_response exposes the headers.
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Write a Python function that validates an IBAN."}],
    )
    answer = raw.parse().choices[0].message.content or ""
    served.append(raw.headers["x-router-model"])
    print(f"step 1 (non-streamed): model={raw.headers['x-router-model']} route={raw.headers['x-router-route']} "
          f"pinned={raw.headers['x-router-pinned']} | {answer[:60]}")

    # Step 2: streamed, different intent; the session keeps its model.
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Explain in detail the trade-offs of validating on the client."}],
    ) as response:
        text, usage = "", None
        for chunk in response.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage.total_tokens
        served.append(response.headers["x-router-model"])
        print(f"step 2 (streamed):     model={response.headers['x-router-model']} "
              f"route={response.headers['x-router-route']} pinned={response.headers['x-router-pinned']} "
              f"tokens={usage} | {text[:60]}")

    if len(set(served)) == 1:
        print(f"✓ both steps served by {served[0]}")
        return 0
    print(f"✗ steps served by different models: {', '.join(served)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
