#!/usr/bin/env bash
# Installs what building and testing aos-unit needs, idempotently:
#   - Debian packages (apt-get), only those missing;
#   - the pinned Deno from npm into packaging/toolchain/node_modules (npm ci);
#   - aos-unit's npm dependencies into .toolchain/deno_dir (deno install --frozen).
# Prints the environment to use: eval "$(bash packaging/setup.sh --env)"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLCHAIN="$ROOT/packaging/toolchain"
# Another checkout (e.g. a release clone) may share an already-filled cache.
export DENO_DIR="${AOS_UNIT_DENO_DIR:-$ROOT/.toolchain/deno_dir}"
DENO="$TOOLCHAIN/node_modules/.bin/deno"

# Tools the product runs, and tools the tests and packaging use.
PACKAGES=(
  iproute2 nftables dnsmasq-base conntrack qemu-utils qemu-system-x86 qemu-system-arm
  ovmf qemu-efi-aarch64 socat ca-certificates
  busybox-static mtools dosfstools fdisk grub-efi-amd64-bin grub-pc-bin cpio xz-utils zstd
  systemd-container mmdebstrap dpkg-dev devscripts fakeroot mandoc lintian gnupg git jq kmod
  dropbear-bin binutils openssl
)

usage() {
  cat <<USAGE
Usage: packaging/setup.sh [--env] [--no-apt]
  --env     print export lines for PATH and DENO_DIR (after installing)
  --no-apt  do not install Debian packages (report the missing ones)
USAGE
}

want_env=0
apt=1
for arg in "$@"; do
  case "$arg" in
    --env) want_env=1 ;;
    --no-apt) apt=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

log() { [ "$want_env" = 1 ] && echo "$*" >&2 || echo "$*"; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# npm fetches the pinned Deno; any Node.js install with npm will do.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$apt" = 1 ]; then
    log "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # --no-install-recommends: systemd-container's recommends would edit the host's nsswitch.conf.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    log "setup: missing Debian packages: ${missing[*]}"
  fi
fi

if [ ! -x "$DENO" ] || ! "$DENO" --version 2>/dev/null | grep -q "^deno 2.9.6 "; then
  log "setup: installing Deno 2.9.6 from npm"
  (cd "$TOOLCHAIN" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

mkdir -p "$DENO_DIR"
(cd "$ROOT" && "$DENO" install --frozen --quiet >&2)

if [ "$want_env" = 1 ]; then
  echo "export DENO_DIR='$DENO_DIR'"
  echo "export PATH='$TOOLCHAIN/node_modules/.bin':\"\$PATH\""
  echo "export NO_COLOR=1"
fi
