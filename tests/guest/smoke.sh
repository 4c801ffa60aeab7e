#!/usr/bin/env bash
# Boot one image built by build.sh with the planner's QEMU command line
# (network: QEMU user/slirp, or an existing tap) and check the AOSTEST
# protocol: boot, lease, dns/http/ping probes, ACPI powerdown. Prints timings.
set -euo pipefail

PROG=${0##*/}
usage() {
	cat <<'EOF'
Usage: tests/guest/smoke.sh --disk FILE.qcow2 [--name NAME] [--tap IFNAME]
                            [--dns NAME] [--http URL] [--ping IP] [--keep-log]

Boots FILE (UEFI if the file name ends in -uefi.qcow2, else BIOS) exactly as
the aos-unit planner does, except that the netdev is QEMU "user" (slirp)
unless --tap is given. Checks, in order:
  AOSTEST boot name=NAME, AOSTEST lease ... event=bound, the probes given
  (default: "aos-probe dns <slirp gateway name>" is skipped; with slirp the
  lease and a ping to 10.0.2.2 are checked), then QMP system_powerdown ->
  "AOSTEST poweroff" and QEMU exit.
Prints "smoke: <what> <seconds>" timing lines and "N passed, N failed".
EOF
}
die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

DISK="" NAME="" TAP="" KEEP=0
PROBES=()
while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--disk) DISK=$2 && shift 2 ;;
	--name) NAME=$2 && shift 2 ;;
	--tap) TAP=$2 && shift 2 ;;
	--dns) PROBES+=("dns $2") && shift 2 ;;
	--http) PROBES+=("http $2") && shift 2 ;;
	--ping) PROBES+=("ping $2") && shift 2 ;;
	--keep-log) KEEP=1 && shift ;;
	*) die "unknown argument $1" ;;
	esac
done
[[ -f $DISK ]] || die "--disk FILE required"
base=${DISK##*/}
if [[ -z $NAME ]]; then
	NAME=${base#aos-vm-}
	NAME=${NAME%-amd64*}
fi
UEFI=0
[[ $base == *-uefi.qcow2 ]] && UEFI=1
command -v socat >/dev/null || apt-get install -y -qq --no-install-recommends socat >&2
[[ ${#PROBES[@]} -gt 0 || -n $TAP ]] || PROBES=("ping 10.0.2.2" "dns localhost")

RUN=$(mktemp -d /dev/shm/aos-smoke.XXXXXX)
QPID=""
cleanup() {
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
		kill "$QPID" 2>/dev/null || true
		wait "$QPID" 2>/dev/null || true
	fi
	if [[ $KEEP == 1 ]]; then
		cp "$RUN/serial.log" "./smoke-$NAME-$UEFI.log" 2>/dev/null || true
	fi
	rm -rf -- "$RUN"
}
trap cleanup EXIT

LOG=$RUN/serial.log
args=(-name "guest=$NAME" -no-user-config -nodefaults -machine q35 -accel tcg -cpu max -smp 1 -m 256M
	-display none -vga none)
if [[ $UEFI == 1 ]]; then
	cp /usr/share/OVMF/OVMF_VARS_4M.fd "$RUN/vars.fd"
	args+=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
		-drive "if=pflash,format=raw,unit=1,file=$RUN/vars.fd")
fi
cp "$DISK" "$RUN/disk.qcow2"
args+=(-device virtio-scsi-pci,id=scsi0
	-drive "file=$RUN/disk.qcow2,if=none,id=disk0,format=qcow2" -device scsi-hd,drive=disk0,bus=scsi0.0)
if [[ -n $TAP ]]; then
	args+=(-netdev "tap,id=net0,ifname=$TAP,script=no,downscript=no")
else
	args+=(-netdev user,id=net0)
fi
args+=(-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56
	-chardev "socket,id=serial0,path=$RUN/serial.sock,server=on,wait=off,logfile=$LOG,logappend=on" -serial chardev:serial0
	-chardev "socket,id=qmp0,path=$RUN/qmp.sock,server=on,wait=off" -mon chardev=qmp0,mode=control
	-device virtio-rng-pci)

PASS=0 FAIL=0
ok() {
	PASS=$((PASS + 1))
	echo "ok   $*"
}
bad() {
	FAIL=$((FAIL + 1))
	echo "FAIL $*"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
markers() { tail -c "+$((${1:-0} + 1))" "$LOG" 2>/dev/null | tr -d '\r' | grep -a '^AOSTEST ' || true; }
wait_marker() { # REGEX TIMEOUT [FROM_BYTE] -> prints the line
	local deadline line
	deadline=$(($(date +%s) + $2))
	while [[ $(date +%s) -le $deadline ]]; do
		line=$(markers "${3:-0}" | grep -E -m1 "$1" || true)
		if [[ -n $line ]]; then
			echo "$line"
			return 0
		fi
		kill -0 "$QPID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

: >"$LOG"
T0=$(now)
qemu-system-x86_64 "${args[@]}" >"$RUN/qemu.out" 2>&1 &
QPID=$!

if line=$(wait_marker "^AOSTEST boot name=" 60); then
	tb=$(since "$T0")
	[[ $line == "AOSTEST boot name=$NAME" ]] && ok "boot marker '$line'" || bad "boot marker '$line' (want name=$NAME)"
	echo "smoke: boot-to-AOSTEST-boot $tb"
else
	bad "no boot marker"
	cat "$RUN/qemu.out" >&2
	exit 1
fi
if line=$(wait_marker "^AOSTEST lease .*event=bound" 60); then
	echo "smoke: boot-to-lease $(since "$T0")"
	ok "lease '$line'"
else
	bad "no lease"
fi
wait_marker "^AOSTEST ready" 10 >/dev/null || bad "no ready marker"

for p in "${PROBES[@]}"; do
	kind=${p%% *}
	off=$(stat -c %s "$LOG")
	t=$(now)
	printf 'aos-probe %s\n' "$p" | socat -u - "UNIX-CONNECT:$RUN/serial.sock"
	if line=$(wait_marker "^AOSTEST $kind " 20 "$off"); then
		case $line in
		*" fail") bad "probe '$p' -> '$line' ($(since "$t") s)" ;;
		*) ok "probe '$p' -> '$line' ($(since "$t") s)" ;;
		esac
	else
		bad "probe '$p': no answer"
	fi
done

off=$(stat -c %s "$LOG")
t=$(now)
printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"system_powerdown"}' |
	socat -t 2 - "UNIX-CONNECT:$RUN/qmp.sock" >"$RUN/qmp.out" &
spid=$!
while kill -0 "$QPID" 2>/dev/null; do
	sleep 0.02
	if [[ $(awk -v a="$t" -v b="$(now)" 'BEGIN { print (b - a > 10) }') == 1 ]]; then break; fi
done
if kill -0 "$QPID" 2>/dev/null; then
	bad "QEMU still running 10 s after system_powerdown"
else
	echo "smoke: powerdown-to-exit $(since "$t")"
	ok "QEMU exited after system_powerdown"
fi
wait "$spid" 2>/dev/null || true
if markers "$off" | grep -q '^AOSTEST poweroff$'; then ok "poweroff marker"; else bad "no poweroff marker"; fi
wait "$QPID" 2>/dev/null || true
QPID=""
echo "$PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
