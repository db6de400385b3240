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

version="${CLAUDE_CODE_VERSION:-2.1.197}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${AGENT_CLIENTS_DIR:-$here/../.clients}/claude-code"
link="$dest/bin/claude"

fail() { echo "claude_code/setup.sh: $*" >&2; exit 1; }

scratch="$(mktemp -d -t claude-setup.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT

# `claude --version` prints "2.1.197 (Claude Code)"; it is run with a throwaway HOME.
version_of() { HOME="$scratch" timeout 60 "$1" --version 2>/dev/null | awk 'NR == 1 {print $1}'; }

if [ -x "$link" ] && [ "$(version_of "$link")" = "$version" ]; then
  echo "Claude Code $version: $(cd "$dest/bin" && pwd)/claude (already installed)"
  exit 0
fi

command -v npm >/dev/null 2>&1 || fail "npm not found; install Node.js 18 or newer (with npm) and run this again"

mkdir -p "$dest" || fail "cannot create $dest"
dest="$(cd "$dest" && pwd)"
link="$dest/bin/claude"
[ -f "$dest/package.json" ] || echo '{"name": "demo-agent-client-claude-code", "private": true}' >"$dest/package.json"

if ! npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$version" >"$scratch/npm.log" 2>&1; then
  cat "$scratch/npm.log" >&2
  fail "npm install @anthropic-ai/claude-code@$version failed (output above)"
fi

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

mkdir -p "$dest/bin"
ln -sfn "../node_modules/@anthropic-ai/claude-code-$found/claude" "$link"
[ "$(version_of "$link")" = "$version" ] || fail "$link does not run"
echo "Claude Code $version: $link"
