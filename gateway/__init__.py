"""An OpenAI-compatible LLM gateway that routes by intent and pins sessions to one model.

Where things live: `api/` (one module per client protocol: chat, messages,
responses; plus admin and ops) -> `api/flow.py` (the flow they share) ->
`decision.py` (the one decision path) -> `routers/` (which route fits) and
`pins.py` / `redis_pins.py` (session pins) -> `upstream/` (bytes out to
providers: byte relay or litellm, under one failover loop).
"""

__version__ = "0.1.0"

from .app import create_app
from .config import Config, ConfigError, load_config
from .decision import Decider, Decision

__all__ = ["create_app", "Config", "ConfigError", "load_config", "Decider", "Decision"]
