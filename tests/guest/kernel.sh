#!/usr/bin/env bash
# Builds the x86_64 test guests' kernel once and caches it: Debian's linux-source-6.1,
# `make tinyconfig` plus tests/guest/kernel.config, everything built in, gzip-compressed.
# Prints "PATH VERSION" of the cached bzImage. See README.md beside this file.
#
# Why not Debian's linux-image: under TCG its xz-compressed 8 MB image takes about 3 s to
# unpack and its initcalls about 2.5 s more, on every boot; this one reaches /init in under
# 2 s. A cold build takes about 5 minutes on 2 cores; a warm cache costs nothing.
#
# Environment: AOS_TEST_CACHE (default /var/cache/aos-unit-tests): the kernel goes to
# $AOS_TEST_CACHE/guest/kernel/<key>/, the source .deb to $AOS_TEST_CACHE/guest/debs/.
set -euo pipefail

PROG=${0##*/}
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAGMENT=$HERE/kernel.config
SRCPKG=linux-source-6.1

# ---------------------------------------------------------------- host tools
REQUIRED=("make=make" "gcc=gcc" "flex=flex" "bison=bison" "bc=bc" "xz=xz-utils"
	"perl=perl-base" "/usr/include/gelf.h=libelf-dev")
missing=()
for item in "${REQUIRED[@]}"; do
	what=${item%%=*}
	if [[ $what == /* ]]; then
		[[ -e $what ]] && continue
	else
		command -v "$what" >/dev/null 2>&1 && continue
	fi
	missing+=("${item#*=}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		apt-get update -qq >&2
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	fi
fi

# ---------------------------------------------------------------- cache key
VER=$(apt-cache policy "$SRCPKG" 2>/dev/null | awk '/^  Candidate:/ && $2 != "(none)" { print $2 }')
if [[ -z $VER ]]; then
	apt-get update -qq >&2 || log "warning: apt-get update failed"
	VER=$(apt-cache policy "$SRCPKG" 2>/dev/null | awk '/^  Candidate:/ && $2 != "(none)" { print $2 }')
fi
[[ -n $VER ]] || die "apt knows no $SRCPKG"
# The key hashes what the image is made of, not this script's text: a comment edited here
# costs no 5-minute rebuild. Raise RECIPE when a change below changes the image.
RECIPE=1
KEY=$({
	echo "recipe=$RECIPE"
	sha256sum <"$FRAGMENT"
	echo "$SRCPKG=$VER"
	gcc -dumpfullversion
} | sha256sum | cut -c1-16)
CACHE_ROOT=${AOS_TEST_CACHE:-/var/cache/aos-unit-tests}/guest
DIR=$CACHE_ROOT/kernel/$KEY
if [[ -s $DIR/bzImage ]]; then
	touch -c "$DIR"
	echo "$DIR/bzImage $VER"
	exit 0
fi
mkdir -p "$CACHE_ROOT/kernel" "$CACHE_ROOT/debs"
# One builder at a time; a second one finds the first one's result.
exec 9>"$CACHE_ROOT/kernel/.lock"
flock 9
if [[ -s $DIR/bzImage ]]; then
	echo "$DIR/bzImage $VER"
	exit 0
fi

# ---------------------------------------------------------------- build
WORK=""
for d in /dev/shm "${TMPDIR:-/tmp}"; do
	if [[ -d $d && -w $d ]] && WORK=$(mktemp -d "$d/aos-kernel.XXXXXX" 2>/dev/null); then break; fi
done
[[ -n $WORK ]] || die "cannot create a scratch directory"
trap 'rm -rf -- "$WORK" "$DIR.tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
deb=$CACHE_ROOT/debs/${SRCPKG}_${VER//:/%3a}_all.deb
if [[ ! -s $deb ]]; then
	log "downloading $SRCPKG $VER"
	(cd "$WORK" && apt-get download -qq -o APT::Sandbox::User=root "$SRCPKG=$VER" >&2)
	got=("$WORK"/*.deb)
	[[ -s ${got[0]} ]] || die "apt-get download $SRCPKG=$VER produced nothing"
	mv -f "${got[0]}" "$deb"
fi
log "building the guest kernel from $SRCPKG $VER (key $KEY; about 5 minutes on 2 cores)"
dpkg-deb --fsys-tarfile "$deb" | tar -x -O --wildcards "./usr/src/$SRCPKG.tar.xz" |
	tar -xJ -C "$WORK"
src=$WORK/$SRCPKG
[[ -f $src/Makefile ]] || die "no kernel tree in $deb"
# Reproducible: the same inputs give the same image.
export KBUILD_BUILD_USER=aos-unit KBUILD_BUILD_HOST=test-guest KBUILD_BUILD_TIMESTAMP="$VER"
make -C "$src" -s tinyconfig >/dev/null
# (It warns that each choice above overrides the default: expected.)
(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$FRAGMENT" >"$WORK/config.log" 2>&1)
make -C "$src" -s olddefconfig >/dev/null
# merge_config warns and goes on when an option cannot be set: fail here instead.
lost=()
while IFS= read -r line; do
	[[ $line =~ ^(CONFIG_[A-Z0-9_]+)=y$ ]] || continue
	grep -qx "$line" "$src/.config" || lost+=("${BASH_REMATCH[1]}")
done <"$FRAGMENT"
[[ ${#lost[@]} -eq 0 ]] || die "kernel.config options not set after olddefconfig: ${lost[*]}"
make -C "$src" -s -j "$(($(nproc) + 1))" bzImage >"$WORK/build.log" 2>&1 ||
	{
		tail -n 40 "$WORK/build.log" >&2
		die "the kernel build failed"
	}
rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
cp "$src/arch/x86/boot/bzImage" "$src/.config" "$DIR.tmp/"
mv "$DIR.tmp" "$DIR"
# Drop other kernels unused for 7 days.
find "$CACHE_ROOT/kernel" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" -mtime +7 \
	-exec rm -rf {} + 2>/dev/null || true
log "built in $((SECONDS - started)) s: $DIR/bzImage"
echo "$DIR/bzImage $VER"
