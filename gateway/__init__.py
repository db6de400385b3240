"""An OpenAI-compatible LLM gateway that routes by intent and pins sessions to one model.

Where things live: `app.py` (HTTP endpoints) -> `decision.py` (the one decision
path) -> `routers/` (which route fits) and `pins.py` / `redis_pins.py` (session
pins) -> `forwarding.py` (bytes out to providers through litellm).
"""

from .app import create_app
from .config import Config, ConfigError, load_config
from .decision import Decider, Decision

__all__ = ["create_app", "Config", "ConfigError", "load_config", "Decider", "Decision"]
__version__ = "0.1.0"
