#!/usr/bin/env bash
# packaging/rpm/build.sh [OUTDIR]: stage (packaging/stage.sh) and build tas-<version>-<rel>.x86_64.rpm
# for EL9 with rpmbuild (works on Debian: the spec carries fallbacks for the systemd macros).
# TAS_PKG_REVISION sets the release (default 1). Prints the path of the .rpm last.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$repo/packaging/out}")
version=$(node -p "require('$repo/package.json').version")
release=${TAS_PKG_REVISION:-1}
mkdir -p "$out"
"$repo/packaging/stage.sh" "$out/rpm" >&2
top="$out/rpm/top"
rm -rf "$top"
mkdir -p "$top"/{BUILD,RPMS,SPECS,SRPMS,BUILDROOT}
rpmbuild --quiet --define "_topdir $top" --define "stage $out/rpm/root" --define "version $version" \
  --define "release $release" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  -bb "$repo/packaging/rpm/tas.spec" >&2
rpm="$out/tas-$version-$release.x86_64.rpm"
mv "$top/RPMS/tas-$version-$release.x86_64.rpm" "$rpm"
echo "$rpm"
