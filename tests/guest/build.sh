#!/usr/bin/env bash
# Build tiny qcow2 guest disks that boot like the real AosCore images
# (UEFI: GPT + ESP + standalone GRUB; BIOS: MBR + GRUB i386-pc; arm64: UEFI
# only), from Debian packages only, without loop devices or mounts. See
# README.md beside this file.
set -euo pipefail

PROG=${0##*/}

usage() {
	cat <<'EOF'
Usage: tests/guest/build.sh --out DIR --name NAME [--name NAME...] [--arch amd64|arm64]

Builds, for each NAME, into DIR:
  --arch amd64 (default):
  aos-vm-NAME-amd64-uefi.qcow2  GPT disk, p1 = EFI system partition (standalone
                                GRUB as /EFI/BOOT/BOOTX64.EFI), p2 and p3 empty
  aos-vm-NAME-amd64.qcow2       MBR disk for SeaBIOS (GRUB i386-pc), same layout
  aos-vm-NAME-amd64-stock.qcow2 GPT disk laid out and networked like the stock
                                AosCore images: boot_a (the ESP), boot_b,
                                rootfs (ext4, /dev/sda3), home, var, aos; "main"
                                is static at --main-ip, every other name takes
                                DHCP and finds main through /etc/hosts
  --arch arm64:
  aos-vm-NAME-arm64-uefi.qcow2  GPT disk for AAVMF, same layout, GRUB as
                                /EFI/BOOT/BOOTAA64.EFI

They boot a busybox initramfs on a kernel: for amd64 one of the tests' own
(tests/guest/kernel.sh builds it once from Debian's linux-source-6.1, every
driver built in), for arm64 Debian's linux-image-6.1.0-*-arm64. Its /init
prints "AOSTEST ..." marker lines on the serial console (ttyS0; ttyAMA0
on arm64; see tests/guest/README.md). The node name is passed to the kernel as
aos.name=NAME by the GRUB config. Every guest runs Debian's dropbear SSH server
on port 22 (root, password "Password1"). The arm64 kernel, busybox-static and
GRUB modules are arm64 .debs that are downloaded and unpacked, never installed
(apt needs the arm64 architecture: "dpkg --add-architecture arm64" is done if
missing); dropbear-bin and its libraries are .debs of the guest's architecture
on both.

Options:
  --out DIR     output directory (created if missing)
  --name NAME   node name (letters, digits, '-'; max 63); repeatable
  --arch ARCH   guest architecture: amd64 (x86_64) or arm64 (aarch64);
                default amd64
  --main-ip CIDR     the stock main's static address (default 10.0.0.100/24);
                     its gateway and DNS are the subnet's first address
  -h, --help    show this help

Environment:
  AOS_TEST_CACHE       cache root (default /var/cache/aos-unit-tests); results
                       go to $AOS_TEST_CACHE/guest/<key>/, .debs to
                       $AOS_TEST_CACHE/guest/debs/
  AOS_TEST_KERNEL_PKG_ARM64  use this arm64 kernel package instead of the
                       newest linux-image-6.1.0-N-arm64 that apt knows about
  TMPDIR               scratch space if /dev/shm is not usable
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- arguments
OUT=""
ARCH=amd64
MAIN_IP=10.0.0.100/24
NAMES=()
while [[ $# -gt 0 ]]; do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--out)
		[[ $# -ge 2 ]] || die "--out needs a value"
		OUT=$2
		shift 2
		;;
	--out=*)
		OUT=${1#--out=}
		shift
		;;
	--name)
		[[ $# -ge 2 ]] || die "--name needs a value"
		NAMES+=("$2")
		shift 2
		;;
	--name=*)
		NAMES+=("${1#--name=}")
		shift
		;;
	--arch)
		[[ $# -ge 2 ]] || die "--arch needs a value"
		ARCH=$2
		shift 2
		;;
	--arch=*)
		ARCH=${1#--arch=}
		shift
		;;
	--main-ip)
		[[ $# -ge 2 ]] || die "--main-ip needs a value"
		MAIN_IP=$2
		shift 2
		;;
	*)
		usage >&2
		die "unknown argument: $1"
		;;
	esac
done
[[ -n $OUT ]] || {
	usage >&2
	die "--out is required"
}
[[ ${#NAMES[@]} -gt 0 ]] || {
	usage >&2
	die "at least one --name is required"
}
case $ARCH in
amd64 | x86_64) ARCH=amd64 ;;
arm64 | aarch64) ARCH=arm64 ;;
*) die "unsupported --arch '$ARCH' (amd64 or arm64)" ;;
esac
[[ $MAIN_IP =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)/24$ ]] ||
	die "--main-ip must be an address in a /24, like 10.0.0.100/24"
MAIN_GW=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}.1
for n in "${NAMES[@]}"; do
	[[ $n =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]] ||
		die "invalid name '$n' (letters, digits and '-', 1-63 chars, no leading/trailing '-')"
done

# ---------------------------------------------------------------- host tools
# command-or-file => Debian package
REQUIRED=(
	"apt-get=apt"
	"dpkg-deb=dpkg"
	"qemu-img=qemu-utils"
	"mcopy=mtools"
	"mmd=mtools"
	"mkfs.vfat=dosfstools"
	"sfdisk=fdisk"
	"cpio=cpio"
	"gzip=gzip"
	"xz=xz-utils"
	"modinfo=kmod"
	"grub-mkstandalone=grub-common"
	"grub-mkimage=grub-common"
	"flock=util-linux"
	"sha256sum=coreutils"
	"mkfs.ext4=e2fsprogs"
	"readelf=binutils"
	"openssl=openssl"
	"dropbearkey=dropbear-bin"
)
if [[ $ARCH == amd64 ]]; then
	REQUIRED+=(
		"/usr/lib/grub/x86_64-efi/linux.mod=grub-efi-amd64-bin"
		"/usr/lib/grub/i386-pc/boot.img=grub-pc-bin"
	)
fi
ensure_tools() {
	local item what pkg missing=()
	for item in "${REQUIRED[@]}"; do
		what=${item%%=*}
		pkg=${item#*=}
		if [[ $what == /* ]]; then
			[[ -e $what ]] && continue
		else
			command -v "$what" >/dev/null 2>&1 && continue
		fi
		missing+=("$pkg")
	done
	# The amd64 guest userland is the host's static busybox; for arm64 its
	# --list-full gives the applet links.
	if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) != "install ok installed" ]]; then
		missing+=(busybox-static)
	fi
	[[ ${#missing[@]} -eq 0 ]] && return 0
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi
}
ensure_tools
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (package busybox-static)"

# ---------------------------------------------------------------- arch
# VARIANTS: the images built per name (uefi: GPT; bios: MBR).
if [[ $ARCH == amd64 ]]; then
	CONSOLE=ttyS0
	VARIANTS=(uefi bios stock)
	GRUB_EFI_TARGET=x86_64-efi
	EFI_BOOT_FILE=BOOTX64.EFI
	TRIPLET=x86_64-linux-gnu
else
	CONSOLE=ttyAMA0 # PL011 on the "virt" machine
	VARIANTS=(uefi)
	GRUB_EFI_TARGET=arm64-efi
	EFI_BOOT_FILE=BOOTAA64.EFI
	TRIPLET=aarch64-linux-gnu
fi

# ---------------------------------------------------------------- cache key
# With Debian's container apt config (no pkgcache.bin) every apt-cache call
# costs ~0.5 s, so ask once: "PKG VERSION" for each package with a candidate
# (an ":ARCH" qualifier is dropped from PKG).
apt_candidates() { # PATTERN... (package names or apt regexes)
	apt-cache policy "$@" 2>/dev/null | awk '
		/^[^ ].*:$/ { pkg = substr($0, 1, length($0) - 1); sub(/:[a-z0-9]+$/, "", pkg) }
		/^  Candidate:/ && $2 != "(none)" { print pkg, $2 }'
}
# The SSH server (dropbear) and the libraries it loads, as .debs of the guest's
# architecture: the initramfs gets the binary, the shared objects its NEEDED
# entries reach and the dynamic loader (build_base checks that they suffice).
DROPBEAR_DEBS=(dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g)
# arm64 also needs busybox-static and the GRUB modules as arm64 .debs.
EXTRA_DEBS=("${DROPBEAR_DEBS[@]}")
[[ $ARCH == arm64 ]] && EXTRA_DEBS+=(busybox-static grub-efi-arm64-bin)
KPIN=${AOS_TEST_KERNEL_PKG_ARM64:-}
KPIN=${KPIN%%:*}
# amd64 boots a kernel of its own (kernel.sh: built once from linux-source-6.1, cached);
# arm64 boots Debian's linux-image (an uncompressed Image: nothing to unpack at boot).
KERNEL_IMAGE=""
KERNEL_SRC=""
if [[ $ARCH == amd64 ]]; then
	read -r KERNEL_IMAGE KERNEL_SRC < <(bash "$(dirname "${BASH_SOURCE[0]}")/kernel.sh") ||
		die "tests/guest/kernel.sh failed"
	[[ -s $KERNEL_IMAGE ]] || die "tests/guest/kernel.sh gave no kernel"
	KERNEL_SRC="linux-source-6.1 $KERNEL_SRC"
fi
KRE="^linux-image-6[.]1[.]0-[0-9]+-$ARCH"
CANDIDATES=""
query_apt() {
	local p extra=() kernel=()
	for p in "${EXTRA_DEBS[@]}"; do
		extra+=("$p:$ARCH")
	done
	[[ $ARCH == amd64 ]] || kernel=("${KPIN:-$KRE\$}")
	CANDIDATES=$(apt_candidates "${kernel[@]}" "${extra[@]}")
}
pick_kernel() { # prints "PKG VERSION" of the newest linux-image-6.1.0-N-ARCH
	if [[ $ARCH == amd64 ]]; then
		echo "$KERNEL_SRC"
		return 0
	fi
	if [[ -n $KPIN ]]; then
		awk -v p="$KPIN" '$1 == p { print; exit }' <<<"$CANDIDATES"
		return 0
	fi
	grep -E "$KRE " <<<"$CANDIDATES" | sort -rV | awk 'NR == 1'
}
candidate() { awk -v p="$1" '$1 == p { print $2; exit }' <<<"$CANDIDATES"; }
have_candidates() {
	local p
	[[ -n $(pick_kernel) ]] || return 1
	for p in "${EXTRA_DEBS[@]}"; do
		[[ -n $(candidate "$p") ]] || return 1
	done
}
query_apt
if ! have_candidates; then
	if [[ $ARCH != "$(dpkg --print-architecture)" ]] &&
		! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
		log "adding the $ARCH architecture to dpkg (for apt-get download only)"
		dpkg --add-architecture "$ARCH"
	fi
	log "no linux-image-6.1.0-*-$ARCH (or ${EXTRA_DEBS[*]:-nothing else}) known to apt; running apt-get update"
	apt-get update -qq >&2 || log "warning: apt-get update failed; trying what apt has"
	query_apt
fi
KSEL=$(pick_kernel)
[[ -n $KSEL ]] || die "no linux-image-6.1.0-*-$ARCH package available"
KPKG=${KSEL% *}
KVER=${KSEL#* }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
GRUBVER=""
if [[ $ARCH == amd64 ]]; then
	BBVER=$(pkgver busybox-static)
else
	BBVER=$(candidate busybox-static)
	GRUBVER=$(candidate grub-efi-arm64-bin)
	[[ -n $BBVER && -n $GRUBVER ]] || die "apt knows no busybox-static:$ARCH or grub-efi-arm64-bin:$ARCH"
fi
# "PKG=VERSION" of each dropbear .deb, for the key and the manifest.
DBVERS=()
for p in "${DROPBEAR_DEBS[@]}"; do
	v=$(candidate "$p")
	[[ -n $v ]] || die "apt knows no $p:$ARCH"
	DBVERS+=("$p=$v")
done

# Every key hashes this script: an edit rebuilds the images (a few seconds).
SELF=$(readlink -f "${BASH_SOURCE[0]}")
SELF_SUM=$(sha256sum <"$SELF")
if [[ $ARCH == amd64 ]]; then
	KEY=$({
		echo "$SELF_SUM"
		echo "kernel=$KPKG=$KVER $KERNEL_IMAGE"
		echo "busybox-static=$BBVER"
		echo "grub-efi-amd64-bin=$(pkgver grub-efi-amd64-bin)"
		echo "grub-pc-bin=$(pkgver grub-pc-bin)"
		printf '%s\n' "${DBVERS[@]}"
	} | sha256sum | cut -c1-16)
else
	KEY=$({
		echo "$SELF_SUM"
		echo "arch=$ARCH"
		echo "kernel=$KPKG=$KVER"
		echo "busybox-static=$BBVER"
		echo "grub-efi-arm64-bin=$GRUBVER"
		echo "grub-common=$(pkgver grub-common)"
		printf '%s\n' "${DBVERS[@]}"
	} | sha256sum | cut -c1-16)
fi

CACHE_ROOT=${AOS_TEST_CACHE:-/var/cache/aos-unit-tests}/guest
KEYDIR=$CACHE_ROOT/$KEY
DEBDIR=$CACHE_ROOT/debs
mkdir -p "$CACHE_ROOT" "$DEBDIR" "$OUT"

# One builder at a time per cache (parallel test jobs share it).
exec 9>"$CACHE_ROOT/.lock"
flock 9

# ---------------------------------------------------------------- scratch
pick_tmp() {
	local d
	for d in /dev/shm "${TMPDIR:-/tmp}"; do
		if [[ -d $d && -w $d ]] && mktemp -d "$d/aos-guest.XXXXXX" 2>/dev/null; then
			return 0
		fi
	done
	return 1
}
WORK=$(pick_tmp) || die "cannot create a scratch directory"
PARTIAL=""
cleanup() { rm -rf -- "$WORK" ${PARTIAL:+"$PARTIAL"}; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export MTOOLS_SKIP_CHECK=1

# Disk geometry (MiB). Partition 1 starts at 1 MiB; GRUB i386-pc core.img is
# embedded in the gap before it.
ESP_MIB=64
P2_MIB=8
P3_MIB=16
DISK_MIB=$((1 + ESP_MIB + P2_MIB + P3_MIB + 1))
ESP_OFFSET=$((1024 * 1024))
# The stock layout (meta-aos-vm): boot_a (ESP), boot_b, rootfs (ext4), home, var, aos.
STOCK_PARTS=("boot_b:8" "rootfs:16" "home:4" "var:4" "aos:4")
STOCK_DISK_MIB=$((1 + ESP_MIB + 8 + 16 + 4 + 4 + 4 + 1))
ROOTFS_OFFSET=$(((1 + ESP_MIB + 8) * 1024 * 1024))
ROOTFS_MIB=16
ESP_TYPE_GPT=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
LINUX_TYPE_GPT=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# ---------------------------------------------------------------- guest files
write_init() { # FILE CONSOLE (ttyS0, ttyAMA0)
	sed "s/@CONSOLE@/$2/g" >"$1" <<'EOF'
#!/bin/sh
# aos-unit test guest /init (generated by tests/guest/build.sh)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 022
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
exec </dev/console >/dev/console 2>&1
# Keep kernel messages from splitting marker lines (dmesg still has them).
echo 1 >/proc/sys/kernel/printk

# The vendor GUID is Linux's crash GUID: efivarfs leaves variables of it mutable (no
# chattr -i in busybox), so a guest can write its variable again, as A/B updates do.
AOS_EFIVAR=/sys/firmware/efi/efivars/AosTest-cfc8fc79-be2e-4ddc-97f0-9f98bfe298a0
NAME=unnamed
for arg in $(cat /proc/cmdline); do
	case $arg in aos.name=*) NAME=${arg#aos.name=} ;; esac
done
echo "$NAME" >/etc/aos-name

while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod.ko" || echo "aos-init: insmod $mod failed"
done </etc/modules.order

# The stock layout keeps its root on /dev/sda3 (ext4): a boot counter, the role, the
# network the image configures itself with, /etc/hosts. Other test disks have an empty p3.
i=0
while [ ! -b /dev/sda3 ] && [ $i -lt 30 ]; do
	sleep 0.1
	i=$((i + 1))
done
COUNT=""
ROLE=""
mkdir -p /aosroot
if mount -t ext4 -o rw,sync /dev/sda3 /aosroot 2>/dev/null; then
	n=$(cat /aosroot/var/aos-boot-count 2>/dev/null || echo 0)
	n=$((n + 1))
	mkdir -p /aosroot/var
	echo "$n" >/aosroot/var/aos-boot-count
	sync
	COUNT=" count=$n"
	ROLE=$(cat /aosroot/etc/aos-role 2>/dev/null)
	[ -f /aosroot/etc/hosts ] && grep -v '^#' /aosroot/etc/hosts >>/etc/hosts
fi

# UEFI variables: efivarfs, and the test variable aos-probe efivar writes.
mkdir -p /sys/firmware/efi/efivars
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null

hostname "$NAME"
echo "AOSTEST boot name=$NAME$COUNT"
if [ -f "$AOS_EFIVAR" ]; then
	echo "AOSTEST efivar value=$(tail -c +5 "$AOS_EFIVAR")"
fi
if [ -n "$ROLE" ]; then
	echo "AOSTEST seq value=$(aos-probe seq-read)"
fi

# ACPI power button (QMP system_powerdown) -> /etc/acpi/PWRF/00000080
acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid

ip link set lo up
# SSH on port 22 (Debian's dropbear; root, password Password1), on every guest. Started
# in the background before the network: it listens on all addresses, whenever they come.
# It logs to /run/dropbear.log, never to the console: every readiness probe of the host is
# a connection, and its lines would split marker lines.
dropbear -F -E -p 22 -r /etc/dropbear/dropbear_ed25519_host_key \
	-r /etc/dropbear/dropbear_rsa_host_key </dev/null >/run/dropbear.log 2>&1 &

i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
# A networkd file with Address= (the stock main) is a static address; else DHCP.
NETFILE=$(ls /aosroot/etc/systemd/network/*.network 2>/dev/null | head -n 1)
ADDR=""
if [ -n "$NETFILE" ]; then
	ADDR=$(sed -n 's/^Address=//p' "$NETFILE" | head -n 1)
	GW=$(sed -n 's/^Gateway=//p' "$NETFILE" | head -n 1)
	DNS=$(sed -n 's/^DNS=//p' "$NETFILE" | tr '\n' ' ')
fi
if [ ! -e /sys/class/net/eth0 ]; then
	echo "aos-init: no eth0"
elif [ -n "$ADDR" ]; then
	ip link set eth0 up
	ip addr add "$ADDR" dev eth0
	[ -n "$GW" ] && ip route add default via "$GW" dev eth0
	for ns in $DNS; do echo "nameserver $ns"; done >/etc/resolv.conf
	line="AOSTEST static ip=${ADDR%/*} prefix=${ADDR#*/} router=$GW dns=$(echo $DNS | tr ' ' ',')"
	echo "$line"
	echo "$line" >/run/aos-lease
else
	ip link set eth0 up
	(
		while :; do
			udhcpc -f -i eth0 -x "hostname:$NAME" -F "$NAME" \
				-s /etc/udhcpc.script -t 5 -T 2 -A 3
			sleep 1
		done
	) >/run/udhcpc.log 2>&1 &
fi

# Stock roles (22 is dropbear, as on every guest): main serves IAM on 8089; each secondary
# keeps reaching main:8089 (found in /etc/hosts) and says so on the console.
if [ "$ROLE" = main ]; then
	mkdir -p /www
	echo "aos-$ROLE name=$NAME" >/www/index.html
	httpd -p 8089 -h /www
elif [ "$ROLE" = secondary ]; then
	(
		last=""
		while :; do
			main=$(awk '$2 == "main" { print $1; exit }' /etc/hosts)
			if body=$(timeout 3 wget -q -O - "http://${main:-main}:8089/" 2>/dev/null); then
				now="ok ip=$main body=$(echo $body | tr ' ' '_')"
			else
				now="fail ip=$main"
			fi
			[ "$now" != "$last" ] && echo "AOSTEST main-reached $now" >/dev/console
			last=$now
			sleep 2
		done
	) &
fi

echo "AOSTEST ready name=$NAME"
# Interactive shell for the test harness, forever.
while :; do
	setsid cttyhack sh -l </dev/@CONSOLE@ >/dev/@CONSOLE@ 2>&1
	sleep 1
done
EOF
}

write_udhcpc_script() {
	cat >"$1" <<'EOF'
#!/bin/sh
# udhcpc event script (aos-unit test guest). Markers go to the console.
say() {
	echo "AOSTEST $*" >/dev/console
	case $* in "lease "*) echo "AOSTEST $*" >/run/aos-lease ;; esac
}
case $1 in
deconfig)
	ip -4 addr flush dev "$interface" 2>/dev/null
	ip link set "$interface" up
	say "lease event=deconfig"
	;;
bound | renew)
	if [ "$1" = bound ] || ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
	fi
	gw=${router%% *}
	while ip route del default dev "$interface" 2>/dev/null; do :; done
	[ -n "$gw" ] && ip route add default via "$gw" dev "$interface"
	{
		s="$domain $search"
		s=$(echo $s)
		[ -n "$s" ] && echo "search $s"
		for ns in $dns; do echo "nameserver $ns"; done
	} >/etc/resolv.conf.new
	mv -f /etc/resolv.conf.new /etc/resolv.conf
	dnslist=$(echo $dns | tr ' ' ',')
	say "lease ip=$ip mask=$subnet router=$gw dns=$dnslist domain=$domain hostname=$hostname event=$1"
	;;
*)
	say "lease event=$1"
	;;
esac
exit 0
EOF
}

write_probe() {
	cat >"$1" <<'EOF'
#!/bin/sh
# aos-probe: one "AOSTEST ..." line per call, for the aos-unit test harness.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
usage() {
	echo "usage: aos-probe dns NAME [SERVER] | http URL | ping IP | lease | efivar [VALUE] | seq-start | seq-read | seq-stop | reboot" >&2
	exit 2
}
[ $# -ge 1 ] || usage
case $1 in
dns)
	[ $# -ge 2 ] || usage
	# busybox nslookup: nameserver/search from /etc/resolv.conf, port 53
	ip=$(timeout 5 nslookup -type=a "$2" ${3:+"$3"} 2>/dev/null |
		awk '/^Name:/ { n = 1; next } n && /^Address:/ { sub(/^Address:[ \t]*/, ""); print; exit }')
	if [ -n "$ip" ]; then
		echo "AOSTEST dns name=$2 ip=$ip"
	else
		echo "AOSTEST dns name=$2 fail"
	fi
	;;
http)
	[ $# -ge 2 ] || usage
	# busybox 1.35 "wget -T" segfaults: bound the time with timeout instead
	if body=$(timeout 5 wget -q -O - "$2" 2>/dev/null); then
		first=$(printf '%s\n' "$body" | head -n 1 | tr -d '\r')
		echo "AOSTEST http url=$2 body=$first"
	else
		echo "AOSTEST http url=$2 fail"
	fi
	;;
ping)
	[ $# -ge 2 ] || usage
	if ping -c 1 -W 2 "$2" >/dev/null 2>&1; then
		echo "AOSTEST ping ip=$2 ok"
	else
		echo "AOSTEST ping ip=$2 fail"
	fi
	;;
lease)
	cat /run/aos-lease 2>/dev/null || echo "AOSTEST lease event=none"
	;;
efivar)
	# efivar [VALUE]: write the test UEFI variable (non-volatile, boot and runtime access),
	# then print what the firmware holds.
	var=/sys/firmware/efi/efivars/AosTest-cfc8fc79-be2e-4ddc-97f0-9f98bfe298a0
	if [ $# -ge 2 ]; then
		printf '\007\000\000\000%s' "$2" >"$var" 2>/dev/null || {
			echo "AOSTEST efivar fail"
			exit 0
		}
	fi
	if [ -f "$var" ]; then echo "AOSTEST efivar value=$(tail -c +5 "$var")"; else echo "AOSTEST efivar none"; fi
	;;
seq-start)
	# A sequence number written straight to /dev/sda4 every 100 ms (O_DIRECT: on the disk,
	# not in the guest's page cache), for snapshots taken at one instant.
	(
		n=$(aos-probe seq-read)
		n=${n:-0}
		while :; do
			n=$((n + 1))
			printf '%010d\n' "$n" | dd of=/dev/sda4 bs=512 count=1 conv=sync,notrunc oflag=direct 2>/dev/null
			sleep 0.1
		done
	) </dev/null >/dev/null 2>&1 &
	# (busybox here has no pgrep: seq-stop finds the writer by its pid file)
	echo $! >/run/aos-seq.pid
	echo "AOSTEST seq started"
	;;
seq-read)
	dd if=/dev/sda4 bs=512 count=1 iflag=direct 2>/dev/null | head -n 1 | tr -dc '0-9' | sed 's/^0*//'
	echo
	;;
seq-stop)
	[ -f /run/aos-seq.pid ] && kill "$(cat /run/aos-seq.pid)" 2>/dev/null
	rm -f /run/aos-seq.pid
	sleep 0.2
	echo "AOSTEST seq stopped value=$(aos-probe seq-read)"
	;;
reboot)
	# What an update does: the guest reboots itself (systemctl reboot --force).
	echo "AOSTEST rebooting"
	sync
	reboot -f
	;;
*) usage ;;
esac
EOF
}

write_poweroff() {
	cat >"$1" <<'EOF'
#!/bin/sh
echo "AOSTEST poweroff" >/dev/console
exec poweroff -f
EOF
}

# ---------------------------------------------------------------- kernel
deb_path() { echo "$DEBDIR/${1}_${2//:/%3a}_$ARCH.deb"; } # PKG VERSION
fetch_deb() { # PKG VERSION -> path of the cached .deb (downloaded if missing)
	local deb dl
	deb=$(deb_path "$1" "$2")
	if [[ ! -s $deb ]]; then
		log "downloading $1:$ARCH $2"
		dl=$WORK/dl
		rm -rf "$dl"
		mkdir -p "$dl"
		(cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$1:$ARCH=$2" >&2)
		local got=("$dl"/*.deb)
		[[ -s ${got[0]} ]] || die "apt-get download $1:$ARCH=$2 produced nothing"
		mv -f "${got[0]}" "$deb.tmp"
		mv -f "$deb.tmp" "$deb"
	fi
	echo "$deb"
}

# Modules wanted in the initramfs, in preferred order; dependencies from
# modinfo are loaded first. Built-in ones are skipped.
WANT_MODULES=(virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci
	failover net_failover virtio_net virtio_rng scsi_mod sd_mod virtio_scsi button evdev
	crc32c_generic ext4 efivarfs)
REQUIRED_MODULES=(virtio_pci virtio_net button evdev)

declare -A MODFILE=() BUILTIN=() SEEN=()
MODORDER=()
norm() { local s=${1//-/_}; echo "${s%%.ko*}"; }
decompress_ko() { # SRC DST
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*) die "unknown module format: $1" ;;
	esac
}
add_module() { # NAME DESTDIR
	local m dep deps
	m=$(norm "$1")
	[[ -n ${SEEN[$m]:-} ]] && return 0
	SEEN[$m]=1
	if [[ -z ${MODFILE[$m]:-} ]]; then
		[[ -n ${BUILTIN[$m]:-} ]] && return 0
		log "warning: module $m is neither a module nor built in"
		return 0
	fi
	decompress_ko "${MODFILE[$m]}" "$2/$m.ko"
	deps=$(modinfo -F depends "$2/$m.ko")
	for dep in ${deps//,/ }; do
		add_module "$dep" "$2"
	done
	MODORDER+=("$m")
}

# ---------------------------------------------------------------- dropbear
# PATH inside the unpacked TREE with its symlinks followed there (an absolute
# target is TREE's, not the host's).
in_tree() { # TREE PATH
	local tree=$1 path=$2 target i
	for ((i = 0; i < 20; i++)); do
		if [[ ! -L $tree$path ]]; then
			if [[ -f $tree$path ]]; then echo "$tree$path"; fi
			return 0
		fi
		target=$(readlink "$tree$path")
		[[ $target == /* ]] || target=${path%/*}/$target
		path=$target
	done
}
find_lib() { # TREE SONAME -> the file in TREE that provides it
	local d f
	for d in "lib/$TRIPLET" "usr/lib/$TRIPLET" lib64 usr/lib64 lib usr/lib; do
		f=$(in_tree "$1" "/$d/$2")
		[[ -n $f ]] && echo "$f" && return 0
	done
	return 1
}
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; } # ELF

# The root password's hash (SHA-512 crypt, as libcrypt checks it). The salt is
# fixed: the same password gives the same initramfs.
ROOT_PASSWORD=Password1
ROOT_SALT=aosunittestguest

# Host keys, made once per cache key (keys do not depend on the architecture;
# the host's dropbearkey makes them) and kept in $KEYDIR/hostkeys.
host_keys() { # -> the directory holding dropbear_{ed25519,rsa}_host_key{,.pub}
	local dir=$KEYDIR/hostkeys t
	if [[ ! -s $dir/dropbear_ed25519_host_key || ! -s $dir/dropbear_rsa_host_key ]]; then
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		dropbearkey -t ed25519 -f "$dir.tmp/dropbear_ed25519_host_key" >/dev/null 2>&1 ||
			die "dropbearkey -t ed25519 failed"
		dropbearkey -t rsa -s 2048 -f "$dir.tmp/dropbear_rsa_host_key" >/dev/null 2>&1 ||
			die "dropbearkey -t rsa failed"
		for t in ed25519 rsa; do
			dropbearkey -y -f "$dir.tmp/dropbear_${t}_host_key" 2>/dev/null | grep '^ssh-' \
				>"$dir.tmp/dropbear_${t}_host_key.pub"
		done
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# dropbear into the initramfs at ROOT: /usr/sbin/dropbear, every shared object its
# NEEDED entries reach (from the unpacked DROPBEAR_DEBS, into /lib/TRIPLET), the
# dynamic loader at its PT_INTERP path, the host keys, root's password and shell.
install_dropbear() { # ROOT
	local root=$1 tree=$WORK/dropbear pv f so src interp keys
	local libdir=$root/lib/$TRIPLET queue=()
	declare -A have=()
	mkdir -p "$tree" "$libdir" "$root/etc/dropbear"
	for pv in "${DBVERS[@]}"; do
		dpkg-deb -x "$(fetch_deb "${pv%%=*}" "${pv#*=}")" "$tree"
	done
	[[ -f $tree/usr/sbin/dropbear ]] || die "no usr/sbin/dropbear in dropbear-bin:$ARCH"
	cp "$tree/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
	queue=("$root/usr/sbin/dropbear")
	while [[ ${#queue[@]} -gt 0 ]]; do
		f=${queue[0]}
		queue=("${queue[@]:1}")
		for so in $(needed "$f"); do
			[[ -n ${have[$so]:-} ]] && continue
			have[$so]=1
			src=$(find_lib "$tree" "$so") ||
				die "dropbear needs $so, which none of ${DROPBEAR_DEBS[*]} ($ARCH) holds"
			cp "$src" "$libdir/$so"
			queue+=("$libdir/$so")
		done
	done
	DB_LIBS=$(printf '%s\n' "${!have[@]}" | LC_ALL=C sort | paste -sd ' ')
	interp=$(readelf -l "$root/usr/sbin/dropbear" |
		sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
	[[ $interp == /* ]] || die "dropbear:$ARCH names no program interpreter"
	if [[ ! -e $libdir/${interp##*/} ]]; then
		src=$(find_lib "$tree" "${interp##*/}") || die "no ${interp##*/} in libc6:$ARCH"
		cp "$src" "$libdir/${interp##*/}"
	fi
	if [[ $interp != "/lib/$TRIPLET/${interp##*/}" ]]; then
		mkdir -p "$root${interp%/*}"
		ln -s "/lib/$TRIPLET/${interp##*/}" "$root$interp"
	fi
	rm -rf "$tree"

	keys=$(host_keys)
	cp "$keys"/dropbear_*_host_key "$root/etc/dropbear/"
	chmod 600 "$root"/etc/dropbear/*
	printf 'root:%s:19000:0:99999:7:::\n' \
		"$(openssl passwd -6 -salt "$ROOT_SALT" "$ROOT_PASSWORD")" >"$root/etc/shadow"
	chmod 600 "$root/etc/shadow"
	printf '/bin/sh\n/bin/ash\n' >"$root/etc/shells"
}

# ---------------------------------------------------------------- base build
build_base() { # DEST (a fresh directory)
	local dest=$1 deb kroot=$WORK/kernel moddir kdir="" vmlinuz f m root fat efi bios bbin grubdir
	if [[ -n $KERNEL_IMAGE ]]; then
		vmlinuz=$KERNEL_IMAGE # everything built in: no module to load
	else
		deb=$(fetch_deb "$KPKG" "$KVER")
		mkdir -p "$kroot"
		log "extracting $KPKG"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kroot" --wildcards \
			'./boot/vmlinuz-*' '*/lib/modules/*'
		vmlinuz=$(find "$kroot/boot" -name 'vmlinuz-*' -type f -print -quit)
		[[ -n $vmlinuz ]] || die "no vmlinuz in $deb"
		kdir=$(find "$kroot" -mindepth 3 -maxdepth 4 -type d -path '*/lib/modules/*' -name '6.1*' -print -quit)
		[[ -n $kdir ]] || die "no lib/modules/<version> in $deb"
	fi

	# busybox and the GRUB modules: the host's for amd64, unpacked .debs for
	# arm64 (their applets are those of the host's busybox that the arm64
	# binary also names: it cannot run here to list them itself).
	bbin=$BUSYBOX
	grubdir=/usr/lib/grub/$GRUB_EFI_TARGET
	if [[ $ARCH != amd64 ]]; then
		dpkg-deb -x "$(fetch_deb busybox-static "$BBVER")" "$WORK/busybox"
		bbin=$WORK/busybox/bin/busybox
		[[ -f $bbin ]] || die "no bin/busybox in busybox-static:$ARCH"
		dpkg-deb -x "$(fetch_deb grub-efi-arm64-bin "$GRUBVER")" "$WORK/grub"
		grubdir=$WORK/grub/usr/lib/grub/$GRUB_EFI_TARGET
		[[ -f $grubdir/kernel.img ]] || die "no $GRUB_EFI_TARGET modules in grub-efi-arm64-bin:$ARCH"
	fi

	if [[ -n $kdir ]]; then
		while IFS= read -r f; do
			MODFILE[$(norm "${f##*/}")]=$f
		done < <(find "$kdir/kernel" -name '*.ko*' -type f)
		if [[ -f $kdir/modules.builtin ]]; then
			while IFS= read -r f; do
				BUILTIN[$(norm "${f##*/}")]=1
			done <"$kdir/modules.builtin"
		fi
		for m in "${REQUIRED_MODULES[@]}"; do
			[[ -n ${MODFILE[$m]:-}${BUILTIN[$m]:-} ]] || die "kernel lacks $m"
		done
	fi

	# initramfs tree
	root=$WORK/root
	moddir=$root/lib/modules
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,etc/acpi/PWRB,proc,sys,dev,run,tmp,root,var/log} "$moddir"
	ln -s /run "$root/var/run"
	if [[ -n $kdir ]]; then
		for m in "${WANT_MODULES[@]}"; do
			add_module "$m" "$moddir"
		done
	fi
	printf '%s\n' "${MODORDER[@]}" >"$root/etc/modules.order"
	log "modules: ${MODORDER[*]:-none (built in)}"

	cp "$bbin" "$root/bin/busybox"
	local applets=()
	if [[ $bbin == "$BUSYBOX" ]]; then
		mapfile -t applets < <("$BUSYBOX" --list-full)
	else
		# NUL-separated strings of the binary, then the applets found there
		tr '\0' '\n' <"$bbin" | grep -a -E '^[][a-z0-9._-]+$' | LC_ALL=C sort -u >"$WORK/bb-strings"
		mapfile -t applets < <("$BUSYBOX" --list-full |
			awk -F / 'NR == FNR { s[$0] = 1; next } s[$NF]' "$WORK/bb-strings" -)
		[[ ${#applets[@]} -gt 100 ]] || die "busybox-static:$ARCH names only ${#applets[@]} applets of the host's"
	fi
	for f in "${applets[@]}"; do
		f=${f#/}
		[[ $f == bin/busybox || $f == linuxrc || -e $root/$f ]] && continue
		mkdir -p "$root/${f%/*}"
		ln -s /bin/busybox "$root/$f"
	done
	install_dropbear "$root"
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true

	write_init "$root/init" "$CONSOLE"
	write_udhcpc_script "$root/etc/udhcpc.script"
	write_probe "$root/usr/bin/aos-probe"
	write_poweroff "$root/etc/acpi/PWRF/00000080"
	write_poweroff "$root/etc/acpi/PWRB/00000080"
	chmod 755 "$root/init" "$root/etc/udhcpc.script" "$root/usr/bin/aos-probe" \
		"$root"/etc/acpi/*/00000080
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\n' >"$root/etc/group"
	printf '127.0.0.1\tlocalhost\n' >"$root/etc/hosts"
	printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
	: >"$root/etc/resolv.conf"
	sed "s/@CONSOLE@/$CONSOLE/g" >"$root/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
if [ -n "$SSH_CONNECTION" ]; then
	# A login over SSH (dropbear): a prompt, echo as the terminal has it.
	PS1='\h# '
else
	# No echo and no prompt: everything on @CONSOLE@ is program output, so marker
	# lines always start a line, and busybox line editing (with its "ESC [ 6 n"
	# cursor queries) stays off. For a human: stty echo; PS1='# '
	PS1=''
	stty -echo 2>/dev/null
fi
cd /root
EOF
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$WORK/initrd.img"

	# GRUB configs. The per-image name lives in /aos/name.cfg on the FAT.
	# UEFI boots the kernel's EFI stub with "chainloader" (the stub loads
	# initrd= itself): GRUB 2.06's "linux" command fails with "out of memory"
	# under OVMF with -m 256M (the 6.1 kernel asks for a 67 MB init_size).
	# The same works with AAVMF for the (uncompressed, 33 MB) arm64 Image.
	# shellcheck disable=SC2016 # ${aos_name} is a GRUB variable
	# no_timer_check: the x86 kernel's check that the IO-APIC timer ticks gives up and
	# panics ("IO-APIC + timer doesn't work!") when a TCG guest gets too little CPU, as
	# 16 guests on 2 CPUs do in the units benchmark. The check proves nothing here.
	local head cmdline="console=$CONSOLE,115200 no_timer_check"' aos.name=${aos_name}'
	head=$(
		cat <<'EOF'
set timeout=0
set timeout_style=hidden
set default=0
set aos_name=unnamed
if [ -f /aos/name.cfg ]; then source /aos/name.cfg; fi
EOF
	)
	cat >"$WORK/grub-efi.cfg" <<EOF
insmod part_gpt
insmod fat
set root=(hd0,gpt1)
$head
menuentry "aos-unit test guest" {
	chainloader /vmlinuz $cmdline initrd=\\initrd.img
}
EOF
	local efi_mods="part_gpt fat normal chain configfile test echo boot"
	efi=$WORK/$EFI_BOOT_FILE
	grub-mkstandalone -O "$GRUB_EFI_TARGET" -d "$grubdir" -o "$efi" \
		--modules="$efi_mods" --install-modules="$efi_mods" \
		--locales= --fonts= --themes= \
		"boot/grub/grub.cfg=$WORK/grub-efi.cfg"

	local core_sectors=0
	if [[ $ARCH == amd64 ]]; then
		cat >"$WORK/grub-bios.cfg" <<EOF
insmod part_msdos
insmod fat
set root=(hd0,msdos1)
$head
menuentry "aos-unit test guest" {
	linux /vmlinuz $cmdline
	initrd /initrd.img
}
EOF
		printf '%s\n' 'set root=(hd0,msdos1)' 'set prefix=(hd0,msdos1)/boot/grub' \
			'serial --unit=0 --speed=115200' 'terminal_output serial' >"$WORK/grub-bios-early.cfg"
		bios=$WORK/core.img
		local bios_mods="biosdisk part_msdos fat normal linux configfile test echo boot serial terminal"
		# shellcheck disable=SC2086 # word splitting of the module list is intended
		grub-mkimage -O i386-pc -o "$bios" -c "$WORK/grub-bios-early.cfg" \
			-p '(hd0,msdos1)/boot/grub' $bios_mods
		core_sectors=$((($(stat -c %s "$bios") + 511) / 512))
		[[ $core_sectors -lt 2047 ]] || die "core.img too big ($core_sectors sectors)"
	fi

	# FAT filesystem shared by both variants (arm64: no BIOS grub.cfg)
	fat=$WORK/fat.img
	truncate -s "${ESP_MIB}M" "$fat"
	mkfs.vfat -F 32 -n AOSBOOT "$fat" >/dev/null
	if [[ $ARCH == amd64 ]]; then
		mmd -i "$fat" ::/EFI ::/EFI/BOOT ::/boot ::/boot/grub ::/aos
	else
		mmd -i "$fat" ::/EFI ::/EFI/BOOT ::/aos
	fi
	mcopy -i "$fat" "$efi" "::/EFI/BOOT/$EFI_BOOT_FILE"
	[[ $ARCH == amd64 ]] && mcopy -i "$fat" "$WORK/grub-bios.cfg" ::/boot/grub/grub.cfg
	mcopy -i "$fat" "$vmlinuz" ::/vmlinuz
	mcopy -i "$fat" "$WORK/initrd.img" ::/initrd.img

	# UEFI: GPT
	local raw=$WORK/uefi.raw
	truncate -s "${DISK_MIB}M" "$raw"
	sfdisk --quiet --no-reread --no-tell-kernel "$raw" >/dev/null <<EOF
label: gpt
start=2048, size=${ESP_MIB}MiB, type=$ESP_TYPE_GPT, name="EFI"
size=${P2_MIB}MiB, type=$LINUX_TYPE_GPT, name="aos-p2"
size=${P3_MIB}MiB, type=$LINUX_TYPE_GPT, name="aos-root"
EOF
	dd if="$fat" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
	cp --sparse=always "$raw" "$dest/uefi.raw"

	# Stock: the meta-aos-vm GPT (boot_a = the ESP, then boot_b, rootfs, home, var, aos).
	if [[ $ARCH == amd64 ]]; then
		raw=$WORK/stock.raw
		truncate -s "${STOCK_DISK_MIB}M" "$raw"
		{
			echo "label: gpt"
			echo "start=2048, size=${ESP_MIB}MiB, type=$ESP_TYPE_GPT, name=\"boot_a\""
			local part
			for part in "${STOCK_PARTS[@]}"; do
				echo "size=${part#*:}MiB, type=$LINUX_TYPE_GPT, name=\"${part%%:*}\""
			done
		} | sfdisk --quiet --no-reread --no-tell-kernel "$raw" >/dev/null
		dd if="$fat" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
		cp --sparse=always "$raw" "$dest/stock.raw"
	fi

	# BIOS: MBR + boot.img (first 440 bytes, keeps the partition table) +
	# core.img in the gap (sector 1; boot.img/diskboot defaults expect that).
	if [[ $ARCH == amd64 ]]; then
		raw=$WORK/bios.raw
		truncate -s "${DISK_MIB}M" "$raw"
		sfdisk --quiet --no-reread --no-tell-kernel "$raw" >/dev/null <<EOF
label: dos
start=2048, size=${ESP_MIB}MiB, type=c, bootable
size=${P2_MIB}MiB, type=83
size=${P3_MIB}MiB, type=83
EOF
		dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=440 count=1 conv=notrunc status=none
		dd if="$bios" of="$raw" bs=512 seek=1 conv=notrunc status=none
		dd if="$fat" of="$raw" bs=1M seek=1 conv=notrunc,sparse status=none
		cp --sparse=always "$raw" "$dest/bios.raw"
	fi

	{
		echo "key=$KEY"
		echo "arch=$ARCH"
		echo "kernel=$KPKG $KVER (${vmlinuz##*/})"
		echo "busybox-static=$BBVER"
		echo "dropbear=${DBVERS[*]}"
		echo "dropbear_libs=$DB_LIBS"
		for f in "$KEYDIR"/hostkeys/dropbear_*_host_key; do
			f=${f##*/dropbear_}
			echo "host_key_${f%_host_key}=$(dropbearkey -y -f "$KEYDIR/hostkeys/dropbear_$f" |
				sed -n 's/^Fingerprint: //p')"
		done
		echo "modules=${MODORDER[*]}"
		echo "initrd_bytes=$(stat -c %s "$WORK/initrd.img")"
		echo "grub_efi_bytes=$(stat -c %s "$efi")"
		[[ $ARCH == amd64 ]] && echo "grub_core_sectors=$core_sectors"
		[[ $ARCH == amd64 ]] || echo "grub-efi-arm64-bin=$GRUBVER"
	} >"$dest/manifest.txt"
	rm -rf "$kroot" "$root" "$WORK/busybox" "$WORK/grub"
}

# ---------------------------------------------------------------- per name
# The stock rootfs of one node (ext4 image at FILE): main is static at MAIN_IP with
# gateway and DNS on the subnet's first address; other names use DHCP and find main
# through /etc/hosts (meta-aos-vm v5.2.2).
stock_rootfs() { # NAME FILE
	local name=$1 dir=$WORK/rootfs-$1
	rm -rf "$dir"
	mkdir -p "$dir/etc/systemd/network" "$dir/var"
	printf '127.0.0.1\tlocalhost\n%s\tmain\n' "${MAIN_IP%/*}" >"$dir/etc/hosts"
	if [[ $name == main ]]; then
		echo main >"$dir/etc/aos-role"
		printf '[Match]\nName=en*\n\n[Network]\nAddress=%s\nGateway=%s\nDNS=%s\n' \
			"$MAIN_IP" "$MAIN_GW" "$MAIN_GW" >"$dir/etc/systemd/network/20-wired.network"
	else
		echo secondary >"$dir/etc/aos-role"
		printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' >"$dir/etc/systemd/network/20-wired.network"
	fi
	rm -f "$2"
	mkfs.ext4 -q -F -L rootfs -d "$dir" "$2" "${ROOTFS_MIB}M" >/dev/null
	rm -rf "$dir"
}

name_image() { # NAME VARIANT(uefi|bios|stock) -> cached qcow2 path
	local name=$1 variant=$2 file raw
	case $variant in
	uefi) file=aos-vm-$name-$ARCH-uefi.qcow2 ;;
	stock) file=aos-vm-$name-$ARCH-stock.qcow2 ;;
	*) file=aos-vm-$name-$ARCH.qcow2 ;;
	esac
	if [[ $variant == stock && $MAIN_IP != 10.0.0.100/24 ]]; then
		file=aos-vm-$name-$ARCH-stock-${MAIN_IP%/*}.qcow2
	fi
	if [[ ! -s $KEYDIR/images/$file ]]; then
		raw=$WORK/$name-$variant.raw
		cp --sparse=always "$KEYDIR/base/$variant.raw" "$raw"
		printf 'set aos_name=%s\n' "$name" >"$WORK/name.cfg"
		mcopy -o -i "$raw@@$ESP_OFFSET" "$WORK/name.cfg" ::/aos/name.cfg
		if [[ $variant == stock ]]; then
			stock_rootfs "$name" "$WORK/rootfs.img"
			dd if="$WORK/rootfs.img" of="$raw" bs=1M seek=$((ROOTFS_OFFSET / 1024 / 1024)) \
				conv=notrunc,sparse status=none
			rm -f "$WORK/rootfs.img"
		fi
		mkdir -p "$KEYDIR/images"
		qemu-img convert -f raw -O qcow2 "$raw" "$KEYDIR/images/$file.tmp"
		mv -f "$KEYDIR/images/$file.tmp" "$KEYDIR/images/$file"
		rm -f "$raw"
	fi
	echo "$KEYDIR/images/$file"
}

START=$SECONDS
# Drop cache entries (other keys, other .debs) unused for 7 days.
find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
	-regex '.*/[0-9a-f]{16}' ! -name "$KEY" -mtime +7 -exec rm -rf {} + 2>/dev/null || true
find "$DEBDIR" -maxdepth 1 -type f -name '*.deb' -mtime +7 -exec rm -f {} + 2>/dev/null || true
if [[ ! -f $KEYDIR/base/.complete ]]; then
	log "building base images (key $KEY, $KPKG $KVER, busybox $BBVER)"
	rm -rf "$KEYDIR/base" "$KEYDIR/base.tmp" "$KEYDIR/images"
	mkdir -p "$KEYDIR/base.tmp"
	build_base "$KEYDIR/base.tmp"
	touch "$KEYDIR/base.tmp/.complete"
	mv "$KEYDIR/base.tmp" "$KEYDIR/base"
fi

touch -c "$KEYDIR" "$(deb_path "$KPKG" "$KVER")" 2>/dev/null || true
for pv in "${DBVERS[@]}"; do
	touch -c "$(deb_path "${pv%%=*}" "${pv#*=}")" 2>/dev/null || true
done
if [[ $ARCH == arm64 ]]; then
	touch -c "$(deb_path busybox-static "$BBVER")" "$(deb_path grub-efi-arm64-bin "$GRUBVER")" 2>/dev/null || true
fi
for name in "${NAMES[@]}"; do
	for variant in "${VARIANTS[@]}"; do
		src=$(name_image "$name" "$variant")
		dst=$OUT/${src##*/}
		PARTIAL=$dst.tmp.$$
		cp --reflink=auto "$src" "$PARTIAL"
		mv -f "$PARTIAL" "$dst"
		PARTIAL=""
		echo "$dst"
	done
done
log "done in $((SECONDS - START)) s (cache $KEYDIR)"
