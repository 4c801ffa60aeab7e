#!/usr/bin/env bash
# Builds aos-unit packages. "The git tag is the release source of truth":
# the base version is the newest vX.Y.Z tag.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: packaging/build_package.sh [--local | --ppa --series SERIES] [options]

Modes:
  --local            (default) a binary .deb for development and testing.
                     Version {base}+git{short_sha}+{timestamp}; changelog
                     generated from the commit.
  --ppa              a signed source package (.dsc, .changes, tarballs) for
                     Launchpad. Version {base}~{series}; changelog = the message
                     of the annotated tag v{base} on HEAD (refused without one);
                     refuses a dirty tree; SOURCE_DATE_EPOCH = commit time, so
                     the result is reproducible.

Options:
  --series NAME      Ubuntu/Debian series for --ppa (e.g. noble, bookworm)
  --sign-key KEYID   GPG key to sign the source package with (--ppa); without
                     it the source package is built unsigned (-us -uc)
  --flavour F        how /usr/bin/aos-unit is made:
                       compiled  deno compile: one self-contained executable
                                 (needs a denort runtime: set DENORT_BIN=/path/to/denort
                                 where the Deno download host is unreachable)
                       bundle    deno bundle + the pinned Deno runtime +
                                 a /usr/bin/aos-unit launcher (works offline)
                       auto      compiled when DENORT_BIN is set, else bundle (default)
  --out DIR          where results go (default: build/)
  --compress C       compression of the .deb, or of the --ppa source tarball:
                     xz (default, smallest) or gzip (fast, for tests)
  -h, --help         this help

Environment:
  DENORT_BIN         a denort binary for offline `deno compile`
  SOURCE_DATE_EPOCH  overrides timestamps (set automatically in --ppa mode)

Examples:
  packaging/build_package.sh                       # build/aos-unit_0.1.0+git1a2b3c4+20261125T101500_amd64.deb
  DENORT_BIN=/opt/denort packaging/build_package.sh --flavour compiled
  packaging/build_package.sh --ppa --series noble --sign-key 0xDEADBEEF
USAGE
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=local
series=""
sign_key=""
flavour=auto
compress=xz
out="$ROOT/build"
while [ $# -gt 0 ]; do
	case "$1" in
	--local) mode=local ;;
	--ppa) mode=ppa ;;
	--series) series=${2:?--series needs a value}; shift ;;
	--sign-key) sign_key=${2:?--sign-key needs a value}; shift ;;
	--flavour) flavour=${2:?--flavour needs a value}; shift ;;
	--out) out=${2:?--out needs a value}; shift ;;
	--compress) compress=${2:?--compress needs a value}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "build_package.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
# dpkg-deb and dpkg-source take the same flags.
case "$compress" in
xz) zflags=(-Zxz) ;;
gzip) zflags=(-Zgzip -z1) ;;
*) die "--compress must be xz or gzip" ;;
esac
die() { echo "build_package.sh: $*" >&2; exit 1; }

cd "$ROOT"
eval "$(bash packaging/setup.sh --env --no-apt)"

# ---- version from the newest vX.Y.Z tag
tag=$(git tag --list 'v[0-9]*.[0-9]*.[0-9]*' --sort=-v:refname | head -n1)
base=${tag#v}
[ -n "$base" ] || base=0.0.0
sha=$(git rev-parse --short=7 HEAD)
commit_epoch=$(git log -1 --format=%ct HEAD)

if [ "$mode" = ppa ]; then
	[ -n "$series" ] || die "--ppa needs --series"
	[ -z "$(git status --porcelain)" ] || die "refusing a dirty tree in PPA mode (commit or stash first)"
	[ -n "$tag" ] || die "no vX.Y.Z tag: tag the release first (git tag -s v1.2.3)"
	[ "$(git rev-parse "$tag^{commit}")" = "$(git rev-parse HEAD)" ] || die "HEAD is not the newest tag $tag"
	[ "$(git cat-file -t "$tag")" = tag ] || die "$tag is a lightweight tag; the changelog comes from an annotated tag's message"
	version="${base}~${series}"
	export SOURCE_DATE_EPOCH=$commit_epoch
	changes=$(git tag -l --format='%(contents:subject)%0a%0a%(contents:body)' "$tag" | sed '/-----BEGIN PGP SIGNATURE-----/,$d' | sed '/^$/N;/^\n$/D')
	[ -n "$(echo "$changes" | tr -d '[:space:]')" ] || die "tag $tag has an empty message"
else
	export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}
	version="${base}+git${sha}+$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%dT%H%M%S)"
	changes="Local build of $(git log -1 --format='%h %s' HEAD)"
	if [ -n "$(git status --porcelain)" ]; then changes="$changes (with uncommitted changes)"; fi

fi

if [ "$flavour" = auto ]; then
	if [ -n "${DENORT_BIN:-}" ]; then flavour=compiled; else
		echo "build_package.sh: no denort runtime (DENORT_BIN unset, download host unreachable): building the bundle flavour" >&2
		flavour=bundle
	fi
fi
case "$flavour" in compiled | bundle) ;; *) die "--flavour must be compiled, bundle or auto" ;; esac

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/aos-unit-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/aos-unit"
mkdir -p "$stage"

# ---- the program
mapfile -t flags < <(deno run --quiet --no-prompt --allow-read="$ROOT" packaging/deno_flags.ts)
bundle="$work/aos-unit.js"
# --platform=browser: packages' browser builds (npm:yaml, @logtape/logtape), which import
# no `node:` module; one would load Deno's Node compatibility layer, about 8 MiB of the
# resident manager and 25 ms of every cold start (aos-unit(8), FOOTPRINT). The bundle still
# runs on Deno; tests/unit/package_test.ts checks that no `node:` import is left.
deno bundle --quiet --platform=browser -o "$bundle" main.ts
no_node() { ! grep -qE '(from |require\(|import\()"node:' "$1" || die "$1 imports a node: module"; }
no_node "$bundle"
grep -q '"0.0.0-dev"' "$bundle" || die "version marker not found in the bundle"
sed -i "s/\"0.0.0-dev\"/\"$version\"/" "$bundle"
install -d "$stage/usr/bin" "$stage/usr/libexec/aos-unit"
if [ "$flavour" = compiled ]; then
	# --no-code-cache: a compiled binary otherwise keeps a V8 code cache in $TMPDIR, where
	# any local user could plant one for root to run (the broker, prerm, sudo aos-unit).
	deno compile --quiet --unstable-net --no-code-cache "${flags[@]}" --no-check -o "$stage/usr/bin/aos-unit" "$bundle" ||
		die "deno compile failed (set DENORT_BIN=/path/to/denort where the Deno download host is unreachable)"
else
	install -d "$stage/usr/lib/aos-unit"
	install -m 0755 "$(readlink -f "$(command -v deno)")" "$stage/usr/lib/aos-unit/deno"
	install -m 0644 "$bundle" "$stage/usr/lib/aos-unit/aos-unit.js"
	# The lease hook's own small bundle (src/lease_hook_entry.ts): dnsmasq starts it cold.
	deno bundle --quiet --platform=browser -o "$stage/usr/lib/aos-unit/lease-hook.js" src/lease_hook_entry.ts
	no_node "$stage/usr/lib/aos-unit/lease-hook.js"
	chmod 0644 "$stage/usr/lib/aos-unit/lease-hook.js"
	# The broker, the manager and prepare: one command each (src/*_entry.ts, the launcher's
	# OWN_BUNDLE), so every start loads less and the resident manager keeps less.
	for entry in startup run prepare; do
		deno bundle --quiet --platform=browser \
			-o "$stage/usr/lib/aos-unit/$entry.js" "src/${entry}_entry.ts"
		no_node "$stage/usr/lib/aos-unit/$entry.js"
		grep -q '"0.0.0-dev"' "$stage/usr/lib/aos-unit/$entry.js" || die "version marker not found in $entry.js"
		sed -i "s/\"0.0.0-dev\"/\"$version\"/" "$stage/usr/lib/aos-unit/$entry.js"
		chmod 0644 "$stage/usr/lib/aos-unit/$entry.js"
	done
	deno run --quiet --no-prompt --allow-read="$ROOT" packaging/deno_flags.ts launcher >"$stage/usr/bin/aos-unit"
	chmod 0755 "$stage/usr/bin/aos-unit"
fi
for hook in lease-hook node-stop node-stopped manager-stopped unit-stopped; do
	install -m 0755 "units/$hook" "$stage/usr/libexec/aos-unit/$hook"
done

# ---- integration files
install -D -m 0644 units/aos-unit.service "$stage/usr/lib/systemd/system/aos-unit.service"
install -D -m 0644 units/aos-unit.slice "$stage/usr/lib/systemd/system/aos-unit.slice"
install -D -m 0644 units/aos-unit-vm-failed@.service "$stage/usr/lib/systemd/system/aos-unit-vm-failed@.service"
install -D -m 0644 units/aos-unit-stopped.service "$stage/usr/lib/systemd/system/aos-unit-stopped.service"
install -D -m 0644 units/aos-unit@.service "$stage/usr/lib/systemd/system/aos-unit@.service"
install -D -m 0644 units/aos-unit-stopped@.service "$stage/usr/lib/systemd/system/aos-unit-stopped@.service"
install -D -m 0644 units/aos-unit-user@.service "$stage/usr/lib/systemd/system/aos-unit-user@.service"
install -D -m 0644 units/aos-unit.sysusers "$stage/usr/lib/sysusers.d/aos-unit.conf"
install -D -m 0644 units/aos-unit.tmpfiles "$stage/usr/lib/tmpfiles.d/aos-unit.conf"
install -D -m 0644 units/aos-unit.sysctl "$stage/usr/lib/sysctl.d/50-aos-unit.conf"
install -D -m 0644 units/50-aos-unit.rules "$stage/usr/share/polkit-1/rules.d/50-aos-unit.rules"
install -D -m 0644 packaging/examples/unit_config.yaml "$stage/etc/aos-unit/unit_config.yaml"
install -D -m 0644 packaging/examples/runtime.conf "$stage/etc/aos-unit/runtime.conf"
install -D -m 0644 packaging/examples/unit_config.yaml "$stage/usr/share/aos-unit/examples/unit_config.yaml"
install -D -m 0644 packaging/examples/runtime.conf "$stage/usr/share/aos-unit/examples/runtime.conf"
install -D -m 0644 packaging/logrotate "$stage/etc/logrotate.d/aos-unit"
install -D -m 0644 packaging/completions/aos-unit.bash "$stage/usr/share/bash-completion/completions/aos-unit"
install -D -m 0644 packaging/completions/_aos-unit "$stage/usr/share/zsh/vendor-completions/_aos-unit"
install -d "$stage/usr/share/man/man8" "$stage/usr/share/man/man5" "$stage/usr/share/doc/aos-unit"
gzip -9n <man/aos-unit.8 >"$stage/usr/share/man/man8/aos-unit.8.gz"
gzip -9n <man/aos-unit.conf.5 >"$stage/usr/share/man/man5/aos-unit.conf.5.gz"
install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/aos-unit/copyright"
date_rfc=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
{
	echo "aos-unit ($version) ${series:-unstable}; urgency=medium"
	echo
	echo "$changes" | fold -s -w 74 | sed 's/^/    /; s/^    $//' | sed '1s/^    /  * /'

	echo
	echo " -- AosEdge unit maintainers <aos-unit@aosedge.tech>  $date_rfc"
} >"$work/changelog"
# A native version (no Debian revision): the changelog is changelog.gz.
gzip -9n <"$work/changelog" >"$stage/usr/share/doc/aos-unit/changelog.gz"
if [ "$flavour" = bundle ]; then
	# Only the bundle flavour carries Deno's upstream binary that the overrides are about.
	install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/aos-unit"
fi
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

if [ "$mode" = ppa ]; then
	# Launchpad builds offline: the source carries the prepared tree; debian/rules installs it.
	src="$work/src/aos-unit-${base}"
	mkdir -p "$src/debian/source"
	cp -a "$stage" "$src/tree"
	cp "$work/changelog" "$src/debian/changelog"
	# The binary stanza takes only binary-package fields (the rest is in the source stanza).
	awk '/^(Package|Architecture|Depends|Recommends|Suggests|Description):/ { keep = 1; print; next }
		/^ / { if (keep) print; next } { keep = 0 }' packaging/debian/control.in >"$work/binary"
	{
		echo "Source: aos-unit"
		echo "Section: admin"
		echo "Priority: optional"
		echo "Maintainer: AosEdge unit maintainers <aos-unit@aosedge.tech>"
		echo "Build-Depends: debhelper-compat (= 13)"
		echo "Standards-Version: 4.6.2"
		echo "Homepage: https://github.com/aosedge/aos_unit"
		echo "Rules-Requires-Root: no"
		echo
		cat "$work/binary"
	} >"$src/debian/control"
	cp packaging/debian/copyright "$src/debian/copyright"
	for s in postinst prerm postrm; do cp "packaging/debian/$s" "$src/debian/aos-unit.$s"; done
	echo "3.0 (native)" >"$src/debian/source/format"
	printf '#!/usr/bin/make -f\n%%:\n\tdh $@\n\noverride_dh_auto_install:\n\tcp -a tree/. debian/aos-unit/\n\noverride_dh_strip:\noverride_dh_dwz:\noverride_dh_shlibdeps:\n' >"$src/debian/rules"
	chmod +x "$src/debian/rules"
	find "$src" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	(cd "$work/src" && dpkg-source "${zflags[@]}" -b "aos-unit-${base}" >/dev/null)
	(cd "$src" && dpkg-genchanges -S -DDistribution="$series" >"../aos-unit_${version}_source.changes")

	if [ -n "$sign_key" ]; then
		(cd "$work/src" && debsign -k"$sign_key" "aos-unit_${version}_source.changes" >/dev/null)
	fi
	cp "$work/src"/aos-unit_"${version}"* "$out/"
	ls "$out"/aos-unit_"${version}"*
	exit 0
fi

# ---- binary package
install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in >"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
deb="$out/aos-unit_${version}_amd64.deb"
dpkg-deb --root-owner-group "${zflags[@]}" --build "$stage" "$deb" >/dev/null

echo "$deb"
