"""The HTTP surface: one module per client protocol (chat, messages, responses), plus admin and ops.

Each protocol module checks its wire format and renders answers and errors in
it; `flow.py` holds the request flow they share.
"""
