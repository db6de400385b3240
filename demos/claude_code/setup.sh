#!/usr/bin/env bash
# Install Claude Code for the demo and its test: npm's @anthropic-ai/claude-code
# into demos/.clients/claude-code (git-ignored), with a stable link to the
# native binary at demos/.clients/claude-code/bin/claude.
#
#   demos/claude_code/setup.sh
#
# CLAUDE_CODE_VERSION picks the version (default: the one the demo was run
# with); AGENT_CLIENTS_DIR moves the install folder (default demos/.clients).
# Idempotent: when that version is already installed it only checks it runs.
# Prints one line on success; on failure a reason on stderr and exit 1.
#
# npm runs with --ignore-scripts, so the package's postinstall (which copies
# the native binary over a placeholder) never runs, whatever npm's policy on
# install scripts: the binary is taken straight from the platform package
# npm installs as an optional dependency (@anthropic-ai/claude-code-linux-x64,
# -linux-arm64, -linux-x64-musl, -darwin-arm64, ...).
set -euo pipefail

name="Claude Code"
version="${CLAUDE_CODE_VERSION:-2.1.197}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${AGENT_CLIENTS_DIR:-$here/../.clients}/claude-code"
source "$here/../lib_npm_cli.sh"  # fail, $scratch, npm_cli_install, npm_cli_link

# `claude --version` prints "2.1.197 (Claude Code)"; it is run with a throwaway HOME.
version_of() { HOME="$scratch" timeout 60 "$1" --version 2>/dev/null | awk 'NR == 1 {print $1}'; }

npm_cli_install @anthropic-ai/claude-code claude  # exits 0 here when already installed

# The platform package npm should have picked, most specific first.
case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) fail "unsupported OS $(uname -s); Claude Code's npm package ships binaries for Linux and macOS here" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) cpu=x64 ;;
  aarch64 | arm64) cpu=arm64 ;;
  *) fail "unsupported CPU $(uname -m)" ;;
esac
candidates=("$os-$cpu")
if [ "$os" = linux ]; then
  if ldd --version 2>&1 | grep -qi musl || ls /lib/ld-musl-* >/dev/null 2>&1; then
    candidates=("$os-$cpu-musl" "$os-$cpu")
  else
    candidates=("$os-$cpu" "$os-$cpu-musl")
  fi
fi

found=""
for platform in "${candidates[@]}"; do
  binary="$dest/node_modules/@anthropic-ai/claude-code-$platform/claude"
  if [ -x "$binary" ] && [ "$(version_of "$binary")" = "$version" ]; then
    found="$platform"
    break
  fi
done
[ -n "$found" ] || fail "npm installed no working native binary (looked for @anthropic-ai/claude-code-{$(IFS=,; echo "${candidates[*]}")}/claude under $dest/node_modules); optional dependencies may be disabled (npm --omit=optional or npm_config_omit)"

npm_cli_link "$dest/node_modules/@anthropic-ai/claude-code-$found/claude"
