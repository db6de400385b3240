"""Importing litellm offline, once, and off the event loop.

litellm fetches a model cost map, Anthropic beta-header tables and tokenizers
from the internet at import or first use unless told not to. The gateway must
make no network call except to configured providers, so these switches are set
here, before the import, whatever the user's environment says.

The import takes seconds of CPU. Done on the event loop it would freeze every
request and /healthz meanwhile, so a serving gateway starts it in a thread
(`start_import`, from the app's startup when the config will translate) and
callers on the loop `await loaded()`: the first translated request waits for
that thread, nothing else does.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from concurrent.futures import Future
from typing import Any

from .config import Config

OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # bundled cost map instead of GitHub
    "LITELLM_OFFLINE_MODE": "true",  # no catalogue, tokenizer or blog fetches
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",  # bundled Anthropic beta-header table
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",  # tokenizers that would come from the Hugging Face hub
}


def set_offline_env() -> None:
    os.environ.update(OFFLINE_ENV)


_module: Any = None
_import_lock = threading.Lock()  # held for the whole import
_start_lock = threading.Lock()  # held only to start the thread, so the event loop never waits on the import
_import_started: Future | None = None


def litellm() -> Any:
    """The litellm module, imported here and now if no one has yet (blocking: not for the event loop)."""
    global _module
    if _module is None:
        with _import_lock:  # one import, whichever thread asks first
            if _module is None:
                _module = _import()
    return _module


def start_import() -> Future:
    """Import litellm in a background thread (once); the Future resolves to the module."""
    global _import_started
    with _start_lock:
        if _import_started is None:
            _import_started = Future()
            threading.Thread(target=_import_into, args=(_import_started,), name="litellm-import",
                             daemon=True).start()
        return _import_started


async def loaded() -> Any:
    """The litellm module for a caller on the event loop, which waits for the import thread if it must."""
    if _module is not None:
        return _module
    # Shielded: a waiter that gives up (a client gone, a request deadline) must not cancel the
    # one shared Future, which would leave every later request waiting on a cancelled import.
    return await asyncio.shield(asyncio.wrap_future(start_import()))


def _import_into(result: Future) -> None:
    try:
        result.set_result(litellm())
    except BaseException as exc:  # the waiting request reports it; a later one tries again
        global _import_started
        _import_started = None
        result.set_exception(exc)


def _import() -> Any:
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
    # The import leaves millions of long-lived objects (model tables, pydantic classes) that
    # every full garbage collection would walk again: measured on the byte relay, streamed
    # requests cost 1.02 ms of CPU each with litellm loaded against 0.61 ms without, and
    # 0.65 ms once these objects are frozen out of the collector's generations.
    gc.freeze()
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


def needed_by(config: Config) -> bool:
    """Whether a gateway serving `config` will call litellm, so its startup should begin the import.

    It will when it routes with an LLM, or when it can reach a provider (a key,
    or its own URL for a keyless server): every provider is sent some client
    format it does not speak (Messages to an OpenAI model, chat to Claude). A
    config whose keys are all unset answers routing decisions only.
    """
    return bool(config.routing.model) or any(p.access_key or p.base_url for p in config.providers)
