#!/bin/sh
# fetch-examples.sh downloads the official FHIR R4 examples (npm package
# hl7.fhir.r4.examples@4.0.1, CC0) into a cache directory for the examples
# corpus test (conformance/examples_test.go).
#
# Usage: conformance/fetch-examples.sh [DIR]   (default: <repo>/.cache/fhir-examples)
#
# Idempotent: does nothing when DIR already holds a complete unpack. The
# tarball's sha1 is pinned, so a changed package fails the fetch.
set -eu

pkg=hl7.fhir.r4.examples
ver=4.0.1
sha1=537ea7db3f3c7b3575fe2eaa7808bad21261cca3

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/.cache/fhir-examples}
marker=$dir/.complete-$pkg-$ver

if [ -f "$marker" ]; then
	echo "fetch-examples: $pkg@$ver already in $dir"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

(cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null)
tgz=$tmp/$pkg-$ver.tgz
got=$(sha1sum "$tgz" | cut -d' ' -f1)
if [ "$got" != "$sha1" ]; then
	echo "fetch-examples: $pkg@$ver sha1 is $got, want $sha1" >&2
	exit 1
fi

# Unpack beside the target and move into place, so an interrupted run never
# leaves a half-filled directory that looks complete.
mkdir -p "$(dirname "$dir")"
staging=$dir.partial
rm -rf "$staging"
mkdir -p "$staging"
tar -xzf "$tgz" -C "$staging" --strip-components=1
rm -rf "$dir"
mv "$staging" "$dir"
touch "$marker"
echo "fetch-examples: $pkg@$ver unpacked into $dir ($(ls "$dir" | wc -l) files)"
