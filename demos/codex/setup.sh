#!/usr/bin/env bash
# Install Codex for the demo and its test: npm's @openai/codex into
# demos/.clients/codex (git-ignored), with a stable link to the native binary
# at demos/.clients/codex/bin/codex.
#
#   demos/codex/setup.sh
#
# CODEX_VERSION picks the version (default: the one the demo was run with);
# AGENT_CLIENTS_DIR moves the install folder (default demos/.clients).
# Idempotent: when that version is already installed it only checks it runs.
# Prints one line on success; on failure a reason on stderr and exit 1.
#
# @openai/codex itself is only a Node launcher; the Rust binary comes in a
# platform package npm installs as an optional dependency (an alias such as
# @openai/codex-linux-x64 -> @openai/codex@<version>-linux-x64), under
# vendor/<target triple>/bin/codex. npm runs with --ignore-scripts (the
# package has no install script today; this keeps it so), and the binary is
# linked directly, so no Node process sits between the demo and Codex.
set -euo pipefail

version="${CODEX_VERSION:-0.171.0}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${AGENT_CLIENTS_DIR:-$here/../.clients}/codex"
link="$dest/bin/codex"

fail() { echo "codex/setup.sh: $*" >&2; exit 1; }

scratch="$(mktemp -d -t codex-setup.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT

# `codex --version` prints "codex-cli 0.171.0"; it is run with a throwaway HOME.
version_of() { HOME="$scratch" CODEX_HOME="$scratch" timeout 60 "$1" --version 2>/dev/null | awk 'NR == 1 {print $2}'; }

if [ -x "$link" ] && [ "$(version_of "$link")" = "$version" ]; then
  echo "Codex $version: $(cd "$dest/bin" && pwd)/codex (already installed)"
  exit 0
fi

command -v npm >/dev/null 2>&1 || fail "npm not found; install Node.js 18 or newer (with npm) and run this again"

mkdir -p "$dest" || fail "cannot create $dest"
dest="$(cd "$dest" && pwd)"
link="$dest/bin/codex"
[ -f "$dest/package.json" ] || echo '{"name": "demo-agent-client-codex", "private": true}' >"$dest/package.json"

if ! npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
      "@openai/codex@$version" >"$scratch/npm.log" 2>&1; then
  cat "$scratch/npm.log" >&2
  fail "npm install @openai/codex@$version failed (output above)"
fi

# The target triple codex.js would pick (Linux builds are static musl binaries).
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64 | Linux-amd64) triple=x86_64-unknown-linux-musl; pkg=linux-x64 ;;
  Linux-aarch64 | Linux-arm64) triple=aarch64-unknown-linux-musl; pkg=linux-arm64 ;;
  Darwin-x86_64) triple=x86_64-apple-darwin; pkg=darwin-x64 ;;
  Darwin-arm64) triple=aarch64-apple-darwin; pkg=darwin-arm64 ;;
  *) fail "unsupported platform $(uname -s) $(uname -m)" ;;
esac

binary="$dest/node_modules/@openai/codex-$pkg/vendor/$triple/bin/codex"
if [ ! -x "$binary" ]; then  # an older layout kept vendor/ inside @openai/codex itself
  binary="$dest/node_modules/@openai/codex/vendor/$triple/bin/codex"
fi
[ -x "$binary" ] || fail "npm installed no native binary for $triple (looked in @openai/codex-$pkg/vendor/$triple/bin/ under $dest/node_modules); optional dependencies may be disabled (npm --omit=optional or npm_config_omit)"
[ "$(version_of "$binary")" = "$version" ] || fail "$binary does not run or is not version $version"

mkdir -p "$dest/bin"
ln -sfn "../${binary#"$dest/"}" "$link"
[ "$(version_of "$link")" = "$version" ] || fail "$link does not run"
echo "Codex $version: $link"
