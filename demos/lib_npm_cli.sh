# Shared by demos/claude_code/setup.sh and demos/codex/setup.sh, which each
# install an agent CLI from npm into a git-ignored folder and link its native
# binary at a stable path. The steps every such install takes are here; what
# differs (the package, where npm puts its binary, how it prints its version)
# stays in the setup script.
#
# Before sourcing it, a setup script sets `name` (shown in its one line of
# output), `version` (the one wanted) and `dest` (the install folder); after,
# it defines `version_of BINARY` (print the version BINARY reports, running it
# with $scratch as a throwaway HOME), then calls npm_cli_install and, once it
# has found the binary, npm_cli_link.

# fail REASON: the reason on stderr, after the setup script's name (e.g. codex/setup.sh), and exit 1.
fail() { echo "$(basename "$(dirname "$0")")/$(basename "$0"): $*" >&2; exit 1; }

scratch="$(mktemp -d -t npm-cli-setup.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT

# npm_cli_install PACKAGE BIN: the stable path is $dest/bin/BIN (set
# as $link). When it already runs $version, say so and exit 0, which keeps the
# setup idempotent and fast; otherwise npm-install PACKAGE@$version into $dest
# (made absolute first), with --ignore-scripts so no package script runs.
npm_cli_install() {
  local package="$1" bin="$2"
  link="$dest/bin/$bin"
  if [ -x "$link" ] && [ "$(version_of "$link")" = "$version" ]; then
    echo "$name $version: $(cd "$dest/bin" && pwd)/$bin (already installed)"
    exit 0
  fi

  command -v npm >/dev/null 2>&1 || fail "npm not found; install Node.js 18 or newer (with npm) and run this again"

  mkdir -p "$dest" || fail "cannot create $dest"
  dest="$(cd "$dest" && pwd)"
  link="$dest/bin/$bin"
  [ -f "$dest/package.json" ] || echo "{\"name\": \"demo-agent-client-$(basename "$dest")\", \"private\": true}" >"$dest/package.json"

  if ! npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error \
        "$package@$version" >"$scratch/npm.log" 2>&1; then
    cat "$scratch/npm.log" >&2
    fail "npm install $package@$version failed (output above)"
  fi
}

# npm_cli_link BINARY: point $link at BINARY (a path under $dest, linked
# relatively so the folder can move), check the link runs $version, print the line.
npm_cli_link() {
  mkdir -p "$dest/bin"
  ln -sfn "../${1#"$dest/"}" "$link"
  [ "$(version_of "$link")" = "$version" ] || fail "$link does not run"
  echo "$name $version: $link"
}
