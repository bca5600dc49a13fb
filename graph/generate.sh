#!/usr/bin/env bash
# Composes the supergraphs of the embedded federation gateway (run by
# `make generate` through go generate). For each directory below, it
# concatenates graph/schema/*.graphqls into pulsewire.graphqls beside the
# directory's graph.yaml (in a temporary copy), runs wgc router compose
# offline, and writes config.json and inputs.sha256: the SHA-256 of the
# inputs (see inputsHash in supergraph_test.go, which TestSupergraphsCurrent
# recomputes to fail when config.json is stale) and of config.json.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C DISABLE_UPDATE_CHECK=true COSMO_TELEMETRY_DISABLED=true
WGC_VERSION=0.112.7

# inputs_hash DIR: graph.yaml, DIR's *.graphqls, then schema/*.graphqls, each
# as "name\n" + content, in this order.
inputs_hash() {
  local d=$1 f
  {
    printf '%s\n' graph.yaml; cat "$d/graph.yaml"
    for f in "$d"/*.graphqls; do [ -e "$f" ] || continue; printf '%s\n' "$(basename "$f")"; cat "$f"; done
    for f in schema/*.graphqls; do printf '%s\n' "schema/$(basename "$f")"; cat "$f"; done
  } | sha256sum | cut -d' ' -f1
}

for d in supergraph testdata/supergraph; do
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$d"/graph.yaml "$tmp"/
  for f in "$d"/*.graphqls; do [ -e "$f" ] && cp "$f" "$tmp"/; done
  cat schema/*.graphqls > "$tmp/pulsewire.graphqls"
  (cd "$tmp" && npx -y "wgc@$WGC_VERSION" router compose -i graph.yaml -o config.json >/dev/null)
  cp "$tmp/config.json" "$d/config.json"
  printf 'inputs %s\nconfig %s\n' "$(inputs_hash "$d")" "$(sha256sum "$d/config.json" | cut -d' ' -f1)" > "$d/inputs.sha256"
  rm -rf "$tmp"
  trap - EXIT
  echo "composed graph/$d/config.json"
done
