"""Reading a conversation the way routers need it: what people wrote, as text, bounded in size."""

from __future__ import annotations

import re
from typing import Any, Iterable

# Routers look at no more than this many characters of any one message, so a
# megabyte of pasted log costs the same as a page.
MAX_MESSAGE_CHARS = 4000
# Agent CLIs put their own context into user turns as one tagged block per text part
# (Claude Code's <system-reminder>, Codex's <environment_context>); that is not what the user asked.
_OPENING_TAG = re.compile(r"\s*<([A-Za-z][\w-]*)>")
TEXT_PARTS = ("text", "input_text", "output_text")


def is_harness_block(text: str) -> bool:
    """True for a text part that is wholly one tagged block of an agent's own context."""
    tag = _OPENING_TAG.match(text)
    return tag is not None and text.rstrip().endswith(f"</{tag.group(1)}>")


def text_of(content: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The text of a message's `content`: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content[:limit]
    if isinstance(content, list):
        parts: list[str] = []
        size = 0
        for part in content:
            if isinstance(part, dict) and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str):
                if is_harness_block(part["text"]):
                    continue
                parts.append(part["text"][: limit - size])
                size += len(parts[-1])
                if size >= limit:
                    break
        return "\n".join(parts)
    return ""


def user_turns(messages: list[dict[str, Any]], max_turns: int = 3) -> list[str]:
    """The texts of the last `max_turns` user messages, latest first (empty ones skipped)."""
    out: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        text = text_of(message.get("content")).strip()
        if text:
            out.append(text)
            if len(out) == max_turns:
                break
    return out


# A request longer than this is a question with something pasted around it (a log, a file, a page);
# the router reads the paragraph that asks, at most this many characters of it.
REQUEST_CHARS = 600
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！", ":")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _wordiness(paragraph: str) -> float:
    """How much a paragraph reads like a request: mostly letters and spaces, in few lines, ending like a
    sentence (logs, code and data are symbols, digits and many short lines)."""
    sample = paragraph[:REQUEST_CHARS]
    letters = sum(1 for c in sample if c.isalpha() or c == " ") / max(len(sample), 1)
    sentence = 0.1 if sample.rstrip().endswith(SENTENCE_ENDS) else 0.0
    return letters + sentence - 0.02 * sample.count("\n")


def request_text(text: str) -> str:
    """The part of a user message that asks for something, bounded in size.

    A short message is all request. A long one is usually a question before or
    after a paste; its first and last paragraphs are the candidates, and the
    one that reads more like a sentence wins (the first on a tie).
    """
    text = text.strip()
    if len(text) <= REQUEST_CHARS:
        return text
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    first, last = paragraphs[0], paragraphs[-1]
    chosen = last if _wordiness(last) > _wordiness(first) + 0.05 else first
    return chosen[:REQUEST_CHARS]


def _ends(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A long text's beginning and end (a question is often asked after a paste), `limit` characters in all."""
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}\n\n{text[-(limit // 2):]}"


def ends_of(content: Any) -> str:
    """Like `text_of`, but a long message keeps its end as well as its beginning (the question after a paste)."""
    if isinstance(content, str):
        return _ends(content)
    if isinstance(content, list):
        parts = [part["text"] for part in content
                 if isinstance(part, dict) and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str)
                 and not is_harness_block(part["text"])]
        if len(parts) > 8:  # bounded work for any number of parts: the first and the last few
            parts = parts[:4] + parts[-4:]
        return _ends("\n\n".join(_ends(p) for p in parts))  # each part a paragraph of its own
    return ""


def latest_request(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """What the user asks for now and what they asked for in the turn before ("" when absent).

    Only user turns count: tool results, tool-call arguments, assistant text
    and the system prompt never stand in for the user's request.
    """
    requests: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        text = request_text(ends_of(message.get("content")))
        if text:
            requests.append(text)
            if len(requests) == 2:
                break
    requests += ["", ""]
    return requests[0], requests[1]


def recent_turns(messages: list[dict[str, Any]], max_chars: int) -> list[dict[str, str]]:
    """User and assistant turns, oldest first, keeping the latest ones within `max_chars`."""
    kept: list[dict[str, str]] = []
    budget = max_chars
    for message in reversed(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue  # system prompts and tool output say little about the user's intent
        text = text_of(message.get("content"), limit=budget).strip()
        if not text:
            continue
        kept.append({"role": role, "content": text})
        budget -= len(text)
        if budget <= 0:
            break
    kept.reverse()
    return kept


def opening(instructions: str, user_texts: Iterable[str]) -> str:
    """A conversation's opening: its standing instructions and first non-empty user turn ("" if none yet)."""
    first = next((text for text in user_texts if text.strip()), "")
    return f"{instructions}\n\n{first}" if first else ""
