#!/usr/bin/env bash
# Verifies that a release tag is an annotated tag with a valid GPG signature
# made by one of the allowed keys, BEFORE anything else of the release runs.
#
# Usage: packaging/verify_tag.sh TAG
# Environment:
#   TAG_SIGNING_PUBKEYS  ASCII-armored public keys allowed to sign releases
#                        (one or more concatenated), or a path to a file holding them
# Exit: 0 verified; 1 refused (with the reason on stderr); 2 usage error.
set -euo pipefail

die() { echo "verify_tag: $*" >&2; exit 1; }
[ $# -eq 1 ] || { echo "usage: verify_tag.sh TAG" >&2; exit 2; }
tag=$1
[[ "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "tag '$tag' is not a release tag (vX.Y.Z)"
git rev-parse -q --verify "refs/tags/$tag" >/dev/null || die "tag '$tag' does not exist"
[ "$(git cat-file -t "refs/tags/$tag")" = tag ] || die "tag '$tag' is a lightweight tag; releases need an annotated, signed tag (git tag -s)"
git cat-file tag "refs/tags/$tag" | grep -q -- '-----BEGIN PGP SIGNATURE-----' || die "tag '$tag' is not signed (git tag -s)"

keys=${TAG_SIGNING_PUBKEYS:-}
[ -n "$keys" ] || die "TAG_SIGNING_PUBKEYS is empty: no key is allowed to sign releases"
if [ -f "$keys" ]; then keys=$(cat "$keys"); fi

# A keyring holding ONLY the allowed keys: a good signature then proves an allowed signer.
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
printf '%s\n' "$keys" | gpg --batch --quiet --import 2>/dev/null || die "TAG_SIGNING_PUBKEYS holds no usable public key"
allowed=$(gpg --batch --with-colons --fingerprint 2>/dev/null | awk -F: '$1 == "fpr" { print $10 }')
[ -n "$allowed" ] || die "TAG_SIGNING_PUBKEYS holds no usable public key"

status=$(git -c gpg.program=gpg verify-tag --raw "refs/tags/$tag" 2>&1 >/dev/null || true)
signer=$(printf '%s\n' "$status" | awk '$2 == "VALIDSIG" { print $3; exit }')
primary=$(printf '%s\n' "$status" | awk '$2 == "VALIDSIG" { print $NF; exit }')
if ! printf '%s\n' "$status" | grep -q '^\[GNUPG:\] GOODSIG ' || [ -z "$signer" ]; then
	if printf '%s\n' "$status" | grep -q '^\[GNUPG:\] ERRSIG \|NO_PUBKEY'; then
		die "tag '$tag' is signed by a key that is not in TAG_SIGNING_PUBKEYS"
	fi
	die "tag '$tag' has no valid signature"
fi
if ! printf '%s\n' "$allowed" | grep -qx -e "$signer" -e "$primary"; then
	die "tag '$tag' is signed by $signer, which is not allowed"
fi
echo "verify_tag: $tag is signed by allowed key $primary"
