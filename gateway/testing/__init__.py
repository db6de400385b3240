"""Test and demo helpers that never run inside a serving gateway (the fake provider)."""
