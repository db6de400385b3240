#!/usr/bin/env python3
"""A real agent framework (the OpenAI Agents SDK) running a multi-step task through the gateway.

    GATEWAY_URL=http://127.0.0.1:12000 python3 agent.py

The agent has four tools and works through them one model call at a time, as
agent loops do. It uses the SDK's default model class, which speaks OpenAI's
Responses API (`POST /v1/responses`). Every call carries the same X-Session-Id, so the gateway pins
the whole run to the model its first step was routed to. A response hook on
the SDK's own HTTP client records the X-Router-* headers of each call, and the
script prints which model served every step.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from typing import Any

from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:12000").rstrip("/")


@function_tool
def research_requirements() -> str:
    """Collect the requirements of the task manager: users, projects, tasks, due dates."""
    return "Users own projects; projects hold tasks with title, status, assignee and due date."


@function_tool
def draft_schema() -> str:
    """Draft the database schema for the task manager."""
    return "tables: users(id, email), projects(id, owner_id, name), tasks(id, project_id, title, status, due)"


@function_tool
def write_endpoints() -> str:
    """Write the REST endpoints for projects and tasks."""
    return "GET/POST /projects, GET/POST /projects/{id}/tasks, PATCH /tasks/{id}"


@function_tool
def review_security() -> str:
    """Review the design for security problems."""
    return "Add authentication, check project ownership on every task route, rate-limit logins."


async def main() -> int:
    set_tracing_disabled(True)  # the SDK would otherwise upload traces to OpenAI
    steps: list[tuple[str, str, str]] = []

    async def record(response: Any) -> None:  # an httpx (openai 1-2) or httpx2 (openai 3) response
        if response.request.url.path.endswith("/responses"):
            h = response.headers
            steps.append((h.get("x-router-model", "?"), h.get("x-router-route", "?"), h.get("x-router-pinned", "?")))

    session_id = f"agent-{uuid.uuid4()}"
    client = AsyncOpenAI(
        base_url=f"{GATEWAY_URL}/v1", api_key="not-used", default_headers={"X-Session-Id": session_id},
        # The SDK's own client class: whichever HTTP package this openai version is built on.
        http_client=DefaultAsyncHttpxClient(event_hooks={"response": [record]}, timeout=120),
    )
    set_default_openai_client(client, use_for_tracing=False)
    agent = Agent(
        name="builder",
        instructions="You build small web services. Use every tool once, in order, then summarise the result.",
        tools=[research_requirements, draft_schema, write_endpoints, review_security],
        model="gpt-4o-mini",  # a plain name: the SDK's default model class, on the Responses API
    )
    result = await Runner.run(agent, "Design and implement a task manager API, then review it for security.",
                              max_turns=12)
    await client.close()

    print(f"session {session_id}")
    for i, (model, route, pinned) in enumerate(steps, start=1):
        print(f"  step {i}: {model} (route={route}, pinned={pinned})")
    print(f"final answer: {str(result.final_output)[:100]}")
    models = {model for model, _, _ in steps}
    if len(steps) > 1 and len(models) == 1:
        print(f"✓ all {len(steps)} agent steps served by {models.pop()}")
        return 0
    print(f"✗ agent steps served by: {', '.join(sorted(models))}")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
