#!/usr/bin/env bash
# Pack the dataset for the device tool, whose working tree travels under 64 MB:
#   benchmarks/pack_dataset.sh ../shared/data/all-idb-taleqani carry/data.tar.xz
# JPEGs are losslessly re-packed (jpegtran -optimize -progressive: the same pixels, so the
# same split), exact duplicates become hard links (stored once), and the tar is xz-compressed:
# 71.9 MB of Original/ travel as 62.1 MB.
# benchmarks/device.sh unpacks it to /tmp/data on its first use (e.g. `bash benchmarks/device.sh bench`).
set -euo pipefail
command -v jpegtran > /dev/null || { echo 'needs jpegtran: apt-get install libjpeg-turbo-progs' >&2; exit 1; }
src=$1 out=$2 stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
(cd "$src" && find Original -name '*.jpg') | while read -r f; do
  mkdir -p "$stage/$(dirname "$f")"
  jpegtran -copy none -optimize -progressive "$src/$f" > "$stage/$f"
done
(cd "$stage" && sha256sum Original/*/*.jpg | sort | awk '$1 == h { print first, $2; next } { h = $1; first = $2 }' \
  | while read -r first dup; do ln -f "$first" "$dup"; done)
mkdir -p "$(dirname "$out")"
tar cf - -C "$stage" Original | xz -9e -T2 > "$out.tmp" && mv "$out.tmp" "$out"
ls -l "$out"
