#!/usr/bin/env bash
# packaging/stage.sh OUT: build the one staged file tree that both the .deb and the .rpm package.
#   OUT/root/usr/lib/tas        package.json, dist/{src,plugins} (compiled JS), build/Release/tas_native.node,
#                               node_modules (production only, pruned, .node files stripped)
#   OUT/root/usr/bin/tas        -> ../lib/tas/bin/tas (the repo's bin/tas wrapper: exec node dist/src/main.js)
#   OUT/root/etc/tas/tas.yaml   the conffile (no secrets; TLS on, /etc/tas/tls.{crt,key})
#   OUT/root/usr/lib/systemd/system/, usr/lib/sysusers.d/, usr/lib/tmpfiles.d/
#   OUT/root/usr/share/doc/tas/, usr/share/man/man8/tas.8.gz
# Needs `npm run build` done (dist/, build/Release/). Production node_modules come from `npm ci
# --omit=dev` in a temporary copy of package.json + package-lock.json, cached under /var/tmp by the
# hash of those files and the node ABI (a rebuild for a version bump then takes seconds).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: stage.sh OUTDIR}
root="$out/root"
lib="$root/usr/lib/tas"

for f in dist/src/main.js build/Release/tas_native.node; do
  [ -f "$repo/$f" ] || { echo "stage.sh: $f missing: run npm run build first" >&2; exit 1; }
done

rm -rf "$root"
install -d "$lib" "$root/usr/bin" "$root/etc/tas" "$root/usr/lib/systemd/system" \
  "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/usr/share/doc/tas/drop-ins" \
  "$root/usr/share/man/man8" "$root/usr/share/lintian/overrides"

# --- application ---------------------------------------------------------------------------
cp "$repo/package.json" "$lib/"
install -d "$lib/dist" "$lib/build/Release" "$lib/bin"
cp -r "$repo/dist/src" "$repo/dist/plugins" "$lib/dist/"
find "$lib/dist" -name '*.map' -delete
# Plugin test helpers compiled next to the plugins are not part of the product.
find "$lib/dist" \( -name '*.test.js' -o -name 'test' -type d \) -prune -exec rm -rf {} +
install -m 0644 "$repo/build/Release/tas_native.node" "$lib/build/Release/"
install -m 0755 "$repo/bin/tas" "$lib/bin/tas"
ln -s ../lib/tas/bin/tas "$root/usr/bin/tas"

# --- production node_modules (cached `npm ci --omit=dev`, pruned on the copy) ---------------------
abi=$(node -p 'process.versions.modules + "-" + process.arch')
key=$(cat "$repo/package.json" "$repo/package-lock.json" | sha256sum | cut -c1-16)
cache="/var/tmp/tas-prodmods-$abi-$key"
if [ ! -f "$cache/.complete" ]; then
  tmp=$(mktemp -d /var/tmp/tas-prodmods.XXXXXX)
  cp "$repo/package.json" "$repo/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$tmp/node_modules/.complete"
  rm -rf "$cache"
  mv "$tmp/node_modules" "$cache"
  rm -rf "$tmp"
fi
nm="$lib/node_modules"
cp -a "$cache" "$nm"
rm -f "$nm/.complete"
# Build leftovers, sources, headers, docs, tests and build-time-only modules: not needed at run time.
# koffi/src must stay (koffi's index.cjs loads src/koffi/index.cjs). node-addon-api is
# headers for compiling addons only.
rm -rf "$nm/.package-lock.json" "$nm/.bin" "$nm/node-addon-api" "$nm/@koromix/koffi-linux-x64/musl_x64" \
  "$nm/koffi/doc" "$nm/koffi/vendor" "$nm/koffi/lib" "$nm/koffi/cnoke.cjs" \
  "$nm/pkcs11js/src" "$nm/pkcs11js/includes" "$nm/pkcs11js/binding.gyp" \
  "$nm/pkcs11js/build/Release/obj.target" "$nm/pkcs11js/build/Release/.deps" "$nm/pkcs11js/build/node_gyp_bins" \
  "$nm/fastify/integration" "$nm/fastify/scripts" "$nm/pino/index.html" \
  "$nm/yaml/bin.mjs" "$nm/pino/bin.js" "$nm/semver/bin" "$nm/safe-regex2/bin" "$nm/canonicalize/bin"
find "$nm/pkcs11js/build" -maxdepth 1 -type f -delete
find "$nm" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name docs -o -name example -o -name examples \
  -o -name benchmark -o -name benchmarks -o -name .github -o -name coverage -o -name integration -o -name .husky \) -exec rm -rf {} +
find "$nm" -type f \( -iname '*.md' -o -iname '*.markdown' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
  -o -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.h' -o -name '*.hh' -o -name '*.hpp' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \
  -o -name '*.gyp' -o -name '*.gypi' -o -name Makefile -o -name CMakeLists.txt -o -name '.npmignore' -o -name '.eslintrc*' \
  -o -name '.gitattributes' -o -name '.gitignore' -o -name '.editorconfig' -o -name '.travis.yml' -o -name '.nycrc*' \
  -o -name 'tsconfig*.json' -o -name '.prettierrc*' -o -name '*.sh' -o -name '*.html' -o -name '.taprc' -o -name '.eslintignore' \) -delete
# Dotfiles (.gitkeep, .nojekyll, lint configs) are repository furniture.
find "$nm" -type f -name '.*' -delete
find "$nm" -depth -type d -empty -delete
find "$nm" -name '*.node' -exec strip --strip-unneeded {} +
# Modules are libraries loaded by node, never executed: no file needs an executable bit.
find "$nm" -type f -exec chmod 0644 {} +
find "$nm" -type d -exec chmod 0755 {} +
strip --strip-unneeded "$lib/build/Release/tas_native.node"
# The pruned tree must still load (koffi and pkcs11js are the native ones).
(cd "$lib" && node -e 'for (const m of ["koffi", "pkcs11js", "fastify", "ioredis", "undici", "pino", "yargs", "yaml", "prom-client"]) require(m)')

# --- configuration, units, docs ----------------------------------------------------------------
install -m 0644 "$repo/packaging/tas.yaml" "$root/etc/tas/tas.yaml"
install -m 0644 "$repo/systemd/tas.service" "$repo/systemd/tas.socket" "$repo/systemd/tas-management.socket" \
  "$root/usr/lib/systemd/system/"
install -m 0644 "$repo/systemd/tas.sysusers" "$root/usr/lib/sysusers.d/tas.conf"
install -m 0644 "$repo/systemd/tas.tmpfiles" "$root/usr/lib/tmpfiles.d/tas.conf"
install -m 0644 "$repo/systemd/drop-ins/"* "$root/usr/share/doc/tas/drop-ins/"
install -m 0644 "$repo/packaging/copyright" "$root/usr/share/doc/tas/copyright"
# The documentation, flat in /usr/share/doc/tas: docs/*.md, the README and the KMIP plugin's
# README (as kmip-plugin.md), with their relative links rewritten to that layout.
doc="$root/usr/share/doc/tas"
for f in "$repo"/docs/*.md; do
  sed 's|(\.\./plugins/tas_kbm_kmip/README\.md)|(kmip-plugin.md)|g' "$f" > "$doc/$(basename "$f")"
done
sed 's|](docs/|](|g; s|(docs/)|(./)|g' "$repo/README.md" > "$doc/README.md"
cp "$repo/plugins/tas_kbm_kmip/README.md" "$doc/kmip-plugin.md"
chmod 0644 "$doc"/*.md
# Not gzipped: the documents link to each other (policy.md, operations.md, ...) and a link to
# x.md does not resolve to x.md.gz in a viewer (Debian policy 12.3 exempts files that other
# documentation references from compression, as dh_compress does for HTML).
node "$lib/dist/src/main.js" --help >/dev/null # the man page is made from this binary's own help
node --import tsx "$repo/packaging/manpage.ts" "$lib/dist/src/main.js" | gzip -9n > "$root/usr/share/man/man8/tas.8.gz"
install -m 0644 "$repo/packaging/deb/lintian-overrides" "$root/usr/share/lintian/overrides/tas"

find "$root" -type d -exec chmod 0755 {} +
echo "staged $root ($(du -sh "$root" | cut -f1))"
