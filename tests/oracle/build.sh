#!/usr/bin/env bash
# Build the serde_json wire oracle offline from Debian's packaged crate sources and print
# the path of the binary (the only thing written to stdout).
#
#   bash tests/oracle/build.sh               # apt-get installs what is missing first (as root, or via sudo)
#   bash tests/oracle/build.sh --no-install  # never installs; exits 3 naming what is missing
#
# Idempotent: installed packages are not reinstalled, and cargo rebuilds only what changed.
# CARGO_TARGET_DIR, if set, is where the build goes (default: tests/oracle/target, git-ignored).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# Debian's crate sources: serde_json 1.0.87 (all features, float_roundtrip included) and serde's
# derive macros, with their dependencies; they land in /usr/share/cargo/registry.
crates=(librust-serde-json-dev 'librust-serde+serde-derive-dev')

install=1
case "${1:-}" in
  --no-install) install=0 ;;
  "") ;;
  *) echo "usage: $0 [--no-install]" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

find_cargo() { # on PATH, or where rustup puts it
  local rustup_cargo="${CARGO_HOME:-${HOME:-}/.cargo}/bin/cargo"
  if command -v cargo; then return 0; fi
  if [ -x "$rustup_cargo" ]; then echo "$rustup_cargo"; return 0; fi
  return 1
}

missing=()
for pkg in "${crates[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
cargo=$(find_cargo) || missing+=(cargo)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$install" = 0 ]; then
    echo "missing: ${missing[*]}" >&2
    exit 3
  fi
  # Not root (a CI runner's user): through sudo, which must not ask for a password.
  as_root=()
  if [ "$(id -u)" != 0 ]; then as_root=(sudo -n env DEBIAN_FRONTEND=noninteractive); fi
  export DEBIAN_FRONTEND=noninteractive
  echo "installing ${missing[*]}" >&2
  if ! "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" </dev/null >&2; then
    echo "apt-get install failed; updating the package lists and trying again" >&2
    "${as_root[@]}" apt-get update </dev/null >&2
    "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" </dev/null >&2
  fi
  cargo=$(find_cargo)
fi

target=${CARGO_TARGET_DIR:-$here/target}
# .cargo/config.toml beside Cargo.toml points crates-io at /usr/share/cargo/registry; cargo reads
# it from the working directory, hence the cd.
cd "$here"
# The lock file is not kept: it is resolved afresh from the one version of each crate Debian ships,
# and a newer cargo's lock file format would stop an older one (Debian's own cargo) from reading it.
rm -f Cargo.lock
"$cargo" build --offline --release --quiet --target-dir "$target" </dev/null >&2
echo "$target/release/oxide-wire-oracle"
