#!/usr/bin/env bash
# Boot one image built by build.sh with the planner's QEMU command line and
# check the AOSTEST protocol: boot, lease, probes, ACPI powerdown.
# shellcheck disable=SC2054 # commas inside QEMU option values are intended
set -euo pipefail

PROG=${0##*/}
usage() {
	cat <<'EOF'
Usage: tests/guest/smoke.sh --disk FILE.qcow2 [--name NAME] [--net user|netns]
                            [--arch amd64|arm64] [--cpu MODEL]
                            [--log FILE] [--timeout SECS]

Boots FILE (UEFI if its name ends in -uefi.qcow2, else BIOS; arm64 if its
name has -arm64-, else amd64) with the planner's QEMU command line, then
checks:
  AOSTEST boot name=NAME, AOSTEST lease ... event=bound, some probes typed on
  the serial socket, and QMP system_powerdown -> AOSTEST poweroff + QEMU exit.

--net user   (default) QEMU slirp instead of the tap netdev: DHCP from slirp,
             probes: ping 10.0.2.2, http to a busybox httpd on the host's
             loopback (reached as 10.0.2.2); no dns probe (slirp would
             forward it to the host's resolver).
--net netns  the real shape: a network namespace of its own with a bridge,
             a tap (-netdev tap,ifname=...,script=no,downscript=no), dnsmasq
             (DHCP + DNS, domain aos-unit) and a busybox httpd on the bridge;
             probes: dns by FQDN, by short name (search domain), of the guest's
             own DHCP-registered name, http by name and by IP, ping.

--arch        overrides the guest architecture taken from the file name.
             arm64 boots like the planner's aarch64 TCG node: qemu-system-aarch64
             -machine virt -cpu cortex-a57 -m 512M, AAVMF (a copy of
             AAVMF_VARS.fd), console ttyAMA0.
--cpu MODEL  another -cpu (for arm64, e.g. max; to compare speed).
--timeout    seconds to wait for "AOSTEST boot" (default 90; arm64 120).

Prints "smoke: <what> <seconds>" timing lines and "N passed, N failed".
--log FILE keeps the serial log. AOS_SMOKE_PREFIX (default aosg-smoke) names
the network namespace (PREFIX-PID) and the run directory in /dev/shm.
EOF
}
die() {
	echo "$PROG: error: $*" >&2
	exit 1
}

DISK="" NAME="" NET=user KEEP="" TMO="" ARCH="" CPU=""
while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--disk) DISK=$2 && shift 2 ;;
	--name) NAME=$2 && shift 2 ;;
	--net) NET=$2 && shift 2 ;;
	--log) KEEP=$2 && shift 2 ;;
	--timeout) TMO=$2 && shift 2 ;;
	--arch) ARCH=$2 && shift 2 ;;
	--cpu) CPU=$2 && shift 2 ;;
	*) die "unknown argument $1" ;;
	esac
done
[[ -f $DISK ]] || die "--disk FILE required"
[[ $NET == user || $NET == netns ]] || die "--net user|netns"
base=${DISK##*/}
if [[ -z $ARCH ]]; then
	ARCH=amd64
	[[ $base == *-arm64-* || $base == *-arm64.qcow2 ]] && ARCH=arm64
fi
case $ARCH in
amd64 | x86_64) ARCH=amd64 ;;
arm64 | aarch64) ARCH=arm64 ;;
*) die "--arch amd64|arm64" ;;
esac
if [[ -z $NAME ]]; then
	NAME=${base#aos-vm-}
	NAME=${NAME%-"$ARCH"*}
fi
UEFI=0
[[ $base == *-uefi.qcow2 ]] && UEFI=1
[[ $ARCH == arm64 && $UEFI == 0 ]] && die "arm64 boots only through UEFI (a -uefi.qcow2 disk)"
[[ -n $TMO ]] || { [[ $ARCH == arm64 ]] && TMO=120 || TMO=90; }
NEED=(socat:socat dnsmasq:dnsmasq)
[[ $ARCH == arm64 ]] && NEED+=(qemu-system-aarch64:qemu-system-arm
	/usr/share/AAVMF/AAVMF_CODE.fd:qemu-efi-aarch64)
for c in "${NEED[@]}"; do
	[[ $NET == user && ${c%%:*} == dnsmasq ]] && continue
	if [[ ${c%%:*} == /* ]]; then
		[[ -e ${c%%:*} ]] && continue
	else
		command -v "${c%%:*}" >/dev/null && continue
	fi
	apt-get install -y -qq --no-install-recommends "${c#*:}" >&2
done

PREFIX=${AOS_SMOKE_PREFIX:-}
RUN=$(mktemp -d "/dev/shm/${PREFIX:-aos-smoke}.XXXXXX")
LOG=$RUN/serial.log
NS="" QPID="" SERFD="" PIDS=()
cleanup() {
	set +e
	[[ -n $SERFD ]] && exec {SERFD}>&-
	if [[ -n $QPID ]] && kill -0 "$QPID" 2>/dev/null; then
		kill "$QPID"
		wait "$QPID"
	fi
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[[ -n $NS ]] && ip netns del "$NS" 2>/dev/null
	[[ -n $KEEP ]] && cp "$LOG" "$KEEP" 2>/dev/null
	rm -rf -- "$RUN"
}
trap cleanup EXIT

# ---------------------------------------------------------------- network
mkdir -p "$RUN/www"
echo "hello-from-aos-smoke" >"$RUN/www/index.html"
NSEXEC=()
if [[ $NET == netns ]]; then
	NS=${PREFIX:-aosg-smoke}-$$
	SUB=10.213.77
	ip netns add "$NS"
	NSEXEC=(ip netns exec "$NS")
	ip -n "$NS" link set lo up
	ip -n "$NS" link add br0 type bridge
	ip -n "$NS" addr add "$SUB.1/24" dev br0
	ip -n "$NS" link set br0 up
	ip -n "$NS" tuntap add dev tap0 mode tap
	ip -n "$NS" link set tap0 master br0 up
	"${NSEXEC[@]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --user=root \
		--no-resolv --no-hosts --bind-interfaces --interface=br0 --except-interface=lo \
		--dhcp-range="$SUB.100,$SUB.200,255.255.255.0,1h" --dhcp-leasefile="$RUN/leases" \
		--domain=aos-unit --local=/aos-unit/ --expand-hosts \
		--host-record="peer.aos-unit,$SUB.50" --host-record="gw.aos-unit,$SUB.1" \
		--pid-file="$RUN/dnsmasq.pid" --log-facility="$RUN/dnsmasq.log" --log-dhcp &
	PIDS+=($!)
	"${NSEXEC[@]}" busybox httpd -f -p "$SUB.1:8080" -h "$RUN/www" &
	PIDS+=($!)
	# "probe args|expected tail of the AOSTEST line"
	PROBES=("dns peer.aos-unit|ip=$SUB.50" "dns peer|ip=$SUB.50"
		"dns $NAME.aos-unit|ip=$SUB.*" "dns nosuch.aos-unit|fail"
		"http http://gw.aos-unit:8080/|body=hello-from-aos-smoke"
		"http http://$SUB.1:8080/|body=hello-from-aos-smoke"
		"http http://$SUB.1:8081/|fail" "ping $SUB.1|ok" "ping $SUB.99|fail")
	NETDEV=(-netdev tap,id=net0,ifname=tap0,script=no,downscript=no)
else
	port=$((20000 + $$ % 20000))
	busybox httpd -f -p "127.0.0.1:$port" -h "$RUN/www" &
	PIDS+=($!)
	PROBES=("ping 10.0.2.2|ok" "http http://10.0.2.2:$port/|body=hello-from-aos-smoke"
		"http http://10.0.2.2:1/|fail")
	NETDEV=(-netdev user,id=net0)
fi

# ---------------------------------------------------------------- qemu
cp "$DISK" "$RUN/disk.qcow2"
SERIAL=(-chardev "socket,id=serial0,path=$RUN/serial.sock,server=on,wait=off,logfile=$LOG,logappend=on" -serial chardev:serial0
	-chardev "socket,id=qmp0,path=$RUN/qmp.sock,server=on,wait=off" -mon chardev=qmp0,mode=control)
if [[ $ARCH == arm64 ]]; then
	# src/plan/qemu.ts qemuArgv() for an aarch64 TCG node (without -name's process=)
	QEMU=qemu-system-aarch64
	cp /usr/share/AAVMF/AAVMF_VARS.fd "$RUN/vars.fd"
	args=(-name "guest=$NAME" -no-user-config -nodefaults -machine virt -accel tcg,tb-size=256
		-cpu "${CPU:-cortex-a57}" -smp 1 -m 512M -display none -msg timestamp=on -rtc base=utc
		-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny
		-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd
		-drive "if=pflash,format=raw,unit=1,file=$RUN/vars.fd"
		-device virtio-scsi-pci,id=scsi0
		-drive "file=$RUN/disk.qcow2,if=none,id=disk0,format=qcow2,discard=unmap"
		-device scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1
		"${NETDEV[@]}" -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56
		-device virtio-rng-pci "${SERIAL[@]}")
else
	QEMU=qemu-system-x86_64
	args=(-name "guest=$NAME" -no-user-config -nodefaults -machine q35 -accel tcg -cpu "${CPU:-max}" -smp 1 -m 256M
		-display none -vga none)
	if [[ $UEFI == 1 ]]; then
		cp /usr/share/OVMF/OVMF_VARS_4M.fd "$RUN/vars.fd"
		args+=(-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
			-drive "if=pflash,format=raw,unit=1,file=$RUN/vars.fd")
	fi
	args+=(-device virtio-scsi-pci,id=scsi0
		-drive "file=$RUN/disk.qcow2,if=none,id=disk0,format=qcow2" -device scsi-hd,drive=disk0,bus=scsi0.0
		"${NETDEV[@]}" -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56
		"${SERIAL[@]}" -device virtio-rng-pci)
fi

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
"${NSEXEC[@]}" "$QEMU" "${args[@]}" >"$RUN/qemu.out" 2>&1 &
QPID=$!

if line=$(wait_marker "^AOSTEST boot name=" "$TMO"); then
	echo "smoke: boot-to-AOSTEST-boot $(since "$T0")"
	if [[ $line == "AOSTEST boot name=$NAME" ]]; then
		ok "boot marker '$line'"
	else
		bad "boot marker '$line' (want name=$NAME)"
	fi
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

# One persistent connection that is always drained: QEMU may drop the input
# of a client that disconnects at once, and an undrained socket stalls the
# guest's serial output.
exec {SERFD}> >(exec socat - "UNIX-CONNECT:$RUN/serial.sock" >/dev/null 2>&1)
for spec in "${PROBES[@]}"; do
	p=${spec%%|*}
	want=${spec#*|}
	kind=${p%% *}
	off=$(stat -c %s "$LOG")
	t=$(now)
	printf 'aos-probe %s\n' "$p" >&"$SERFD"
	if line=$(wait_marker "^AOSTEST $kind " 20 "$off"); then
		# shellcheck disable=SC2053 # $want is a glob pattern
		if [[ " $line" == *" "$want ]]; then
			ok "aos-probe $p -> '$line' ($(since "$t") s)"
		else
			bad "aos-probe $p -> '$line' (want ...$want)"
		fi
	else
		bad "aos-probe $p: no answer"
	fi
done

off=$(stat -c %s "$LOG")
t=$(now)
printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"system_powerdown"}' |
	socat -t 2 - "UNIX-CONNECT:$RUN/qmp.sock" >"$RUN/qmp.out" &
spid=$!
while kill -0 "$QPID" 2>/dev/null; do
	sleep 0.02
	[[ $(awk -v a="$t" -v b="$(now)" 'BEGIN { print (b - a > 10) }') == 1 ]] && break
done
if kill -0 "$QPID" 2>/dev/null; then
	bad "QEMU still running 10 s after system_powerdown"
else
	echo "smoke: powerdown-to-exit $(since "$t")"
	ok "QEMU exited after system_powerdown"
	wait "$QPID" 2>/dev/null || true
	QPID=""
fi
wait "$spid" 2>/dev/null || true
if markers "$off" | grep -q '^AOSTEST poweroff$'; then ok "poweroff marker"; else bad "no poweroff marker"; fi
echo "$PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]
