#!/bin/sh
# Throughput (200 MiB transfer) and latency (1,000 small requests) through
# airlock's egress proxy — relay on TCP loopback → unix socket → proxy →
# origin — against direct connections to the same loopback servers.
# Targets: >= 80 % of direct throughput, < 1 ms added latency per request.
#
# Then the credential route ([[credentials]]): a client holding only the
# phantom sends plain HTTP to the relay, the proxy injects the credential and
# makes the TLS request itself, against a direct TLS client of the same HTTPS
# origin (test CA): added latency per request (p50, keep-alive and one
# connection per request) and added time to the first server-sent event.
# Targets: < 1 ms added p50 for both.
#
# Loopback only. When user namespaces are available the bench runs in a
# private network namespace (only `lo`), so nothing can leave the machine.
#
# Usage: scripts/bench-proxy.sh [MEGABYTES] [REQUESTS]
set -eu
cd "$(dirname "$0")/.."
cargo build --release --example proxy_bench >&2
bin=target/release/examples/proxy_bench
if unshare --net --map-root-user true 2>/dev/null; then
    echo "(running in a private network namespace)"
    exec unshare --net --map-root-user -- "$bin" "$@"
fi
echo "(no user namespaces: running in the current network namespace, loopback only)"
exec "$bin" "$@"
