#!/usr/bin/env bash
# packaging/deb/build.sh [OUTDIR]: stage (packaging/stage.sh) and build tas_<version>-<rev>_amd64.deb
# with dpkg-deb --root-owner-group. TAS_PKG_REVISION overrides the Debian revision (default 1),
# e.g. to build an upgrade of the same upstream version. Prints the path of the .deb last.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$repo/packaging/out}")
version="$(node -p "require('$repo/package.json').version")-${TAS_PKG_REVISION:-1}"
mkdir -p "$out"
"$repo/packaging/stage.sh" "$out/deb" >&2
root="$out/deb/root"

# The changelog and maintainer scripts.
install -d "$root/DEBIAN"
printf 'tas (%s) unstable; urgency=medium\n\n  * Package of tas %s.\n\n -- tas maintainers <tas@example.org>  %s\n' \
  "$version" "$version" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}")" \
  | gzip -9n > "$root/usr/share/doc/tas/changelog.Debian.gz"
for s in postinst prerm postrm; do install -m 0755 "$repo/packaging/deb/$s" "$root/DEBIAN/$s"; done
printf '/etc/tas/tas.yaml\n' > "$root/DEBIAN/conffiles"

# Library dependencies of the native addons (dpkg-shlibdeps wants a debian/control in cwd).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian"
: > "$work/debian/control"
mapfile -t elfs < <(find "$root/usr/lib/tas" -name '*.node')
shlibs=$(cd "$work" && dpkg-shlibdeps -O "${elfs[@]/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "dpkg-shlibdeps found no library dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: tas
Version: $version
Architecture: amd64
Maintainer: tas maintainers <tas@example.org>
Installed-Size: $size
Depends: nodejs (>= 20.19), adduser, openssl, xmlsec1, $shlibs
Recommends: redis-server
Suggests: softhsm2, opensc
Section: admin
Priority: optional
Homepage: https://github.com/tas-project/tas
Description: hardened TEE attestation appliance (AMD SEV-SNP key release)
 tas verifies AMD SEV-SNP attestation reports of confidential VMs against
 AMD's certificate chain and a signed policy, and releases a key from a key
 broker (PKCS#11 HSM, KMIP server) wrapped for the VM.
 .
 The service runs under a hardened systemd unit, socket activated on port
 5000, with TLS on by default.
CONTROL

# md5sums of every shipped file but the conffiles (dpkg tracks those itself), as dh_md5sums does:
# dpkg --verify and debsums check installed files against it.
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum | sed 's|  \./|  |') \
  | grep -vxFf <(sed 's|^/||; s|^|  |' "$root/DEBIAN/conffiles" | while read -r f; do md5sum "$root/$f" | sed "s|  $root/|  |"; done) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$out/tas_${version}_amd64.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >&2
echo "$deb"
