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

name="Codex"
version="${CODEX_VERSION:-0.171.0}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="${AGENT_CLIENTS_DIR:-$here/../.clients}/codex"
source "$here/../lib_npm_cli.sh"  # fail, $scratch, npm_cli_install, npm_cli_link

# `codex --version` prints "codex-cli 0.171.0"; it is run with a throwaway HOME.
version_of() { HOME="$scratch" CODEX_HOME="$scratch" timeout 60 "$1" --version 2>/dev/null | awk 'NR == 1 {print $2}'; }

npm_cli_install @openai/codex codex  # exits 0 here when already installed

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

npm_cli_link "$binary"
