#!/usr/bin/env bash
# What the benchmark suite needs besides the project itself: wrk (Debian's
# package) as the load generator, and LiteLLM's proxy, the peer it is compared
# with, in its own venv so its dependencies never mix with the gateway's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk; else sudo apt-get install -y -q wrk; fi
fi
if [ ! -x "$here/.venv-proxy/bin/litellm" ]; then
  python3 -m venv "$here/.venv-proxy"
  "$here/.venv-proxy/bin/pip" install -q 'litellm[proxy]'
fi
