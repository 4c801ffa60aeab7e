#!/usr/bin/env bash
# The aos-unit demo: a two-node unit on the built-in test images, which network like
# the stock AosCore ones (main static at 10.0.0.100, the secondary on DHCP), from the
# shipped configuration, under a real systemd booted in a container (PID 1 on this
# machine need not be systemd).
#
#   bash packaging/demo.sh          build, install, start, show, tear down
#   bash packaging/demo.sh --keep   ... and leave it running
#   bash packaging/demo.sh stop     tear a kept demo down
#   bash packaging/demo.sh shell    a shell inside the demo container
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BED="$ROOT/tests/bed/bed.sh"
NAME=aos-demo
WORK=/var/tmp/aos-unit-demo
keep=0

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inbed() { bash "$BED" exec "$NAME" -- "$@"; }

case "${1:-}" in
stop)
	bash "$BED" down "$NAME" || true
	rm -rf "$WORK"
	exit 0
	;;
shell) exec bash "$BED" exec "$NAME" -- bash ;;
--keep) keep=1 ;;
"") ;;
-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
*) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (bash packaging/demo.sh, or with sudo)" >&2; exit 2; }

teardown() {
	say "Tearing down"
	bash "$BED" down "$NAME" || true
	rm -rf "$WORK"
}
if [ "$keep" = 0 ]; then trap teardown EXIT; fi

started=$(date +%s)
say "Installing tools (Debian packages, pinned Deno)"
eval "$(bash "$ROOT/packaging/setup.sh" --env)"

bash "$BED" down "$NAME" >/dev/null 2>&1 || true
rm -rf "$WORK"
mkdir -p "$WORK"

say "Building the package and the test images"
deb=$(bash "$ROOT/packaging/build_package.sh" --out "$WORK" --compress gzip 2>/dev/null | tail -n1)
echo "$deb"
bash "$ROOT/tests/guest/build.sh" --out "$WORK/images" --name main --name secondary

say "Booting systemd in a container (bookworm, cached after the first run)"
bash "$BED" up "$NAME" --flavour base

say "apt-get install ./$(basename "$deb")"
bash "$BED" cp-in "$NAME" "$deb" /tmp/
inbed apt-get install -y -q "/tmp/$(basename "$deb")" | grep -E '^(Setting up aos-unit|The following NEW)' || true

say "Placing the images as the README says; small guests for the demo"
for n in main secondary; do
	bash "$BED" cp-in "$NAME" "$WORK/images/aos-vm-$n-amd64-stock.qcow2" "/var/lib/aos-unit/aos-vm-$n-qemux86-64.qcow2"
done
inbed sh -c 'chown aos-unit:aos-unit /var/lib/aos-unit/*.qcow2 &&
	sed -i "s/cpu: [0-9]*/cpu: 1/; s/mem: [0-9]*G/mem: 512M/" /etc/aos-unit/unit_config.yaml &&
	cat /etc/aos-unit/unit_config.yaml'

say "systemctl start aos-unit   (returns when every node has an address)"
t0=$(date +%s%N)
inbed systemctl start aos-unit
echo "started in $((($(date +%s%N) - t0) / 1000000)) ms"

say "aos-unit status"
inbed aos-unit status || true

say "getent hosts main.aos-unit secondary.aos-unit   (host-side names via systemd-resolved)"
inbed getent hosts main.aos-unit secondary.aos-unit

say "main.aos-unit:8089 from the host (what aos-prov talks to)"
inbed bash -c 'exec 3<>/dev/tcp/main.aos-unit/8089 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && tail -n 1 <&3' || true

say "systemctl list-units 'aos-*'"
inbed systemctl list-units --no-pager 'aos-*'

echo
echo "Demo ready after $(($(date +%s) - started)) s."
if [ "$keep" = 1 ]; then
	echo "It keeps running. Look around: bash packaging/demo.sh shell"
	echo "  (inside: aos-unit status, aos-unit console main, journalctl -u 'aos-*')"
	echo "Stop it with: bash packaging/demo.sh stop"
fi
