"""Importing litellm offline, once, only when a provider call first needs it.

litellm fetches a model cost map, Anthropic beta-header tables and tokenizers
from the internet at import or first use unless told not to. The gateway must
make no network call except to configured providers, so these switches are set
here, before the import, whatever the user's environment says.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # bundled cost map instead of GitHub
    "LITELLM_OFFLINE_MODE": "true",  # no catalogue, tokenizer or blog fetches
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",  # bundled Anthropic beta-header table
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",  # tokenizers that would come from the Hugging Face hub
}


def set_offline_env() -> None:
    os.environ.update(OFFLINE_ENV)


@lru_cache(maxsize=1)
def litellm() -> Any:
    """The litellm module, imported with the offline switches set and its chatter off."""
    set_offline_env()
    import litellm as module

    module.telemetry = False
    module.suppress_debug_info = True
    module.drop_params = True  # a parameter one provider lacks is dropped, not an error
    module.set_verbose = False
    # Messages bridged to an OpenAI-format provider go over its chat completions,
    # which every such server has, not over a Responses API most of them lack.
    module.use_chat_completions_url_for_anthropic_messages = True
    _skip_proxy_router_lookup()
    # A client's image URL is fetched by litellm when it translates for Anthropic: never from private networks.
    if hasattr(module, "user_url_validation"):
        module.user_url_validation = True
    import logging

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return module


def _skip_proxy_router_lookup() -> None:
    """Stop litellm's Messages bridge from looking for LiteLLM's proxy on every call.

    Without a router argument, the bridge tries `from litellm.proxy.proxy_server
    import llm_router` each time. Without the proxy's extras installed that
    import fails part-way, so Python never caches it and every translated
    Messages call pays for loading a dozen modules again (measured in README,
    Performance). The gateway is not LiteLLM's proxy and has no such router.
    """
    try:
        from litellm.llms.anthropic.messages.adapters import handler
    except ImportError:  # another litellm layout: nothing to tune
        return
    if hasattr(handler, "_proxy_router_fallback"):
        handler._proxy_router_fallback = lambda: None
