#!/usr/bin/env bash
# Encrypt req/s on one dev node: root token without audit, then a non-root token (ACL
# checked against a policy) with one file audit device enabled.
#
#   bench/encrypt_acl_audit.sh
#
# wrk -t2 -c32 -d10s after a 5 s warm-up each; needs wrk. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=18201
U=http://127.0.0.1:$PORT/v1
AUDIT=$(mktemp -d)/audit.log
.venv/bin/transit server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$PORT >/tmp/bench-acl.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf $U/sys/health >/dev/null && break; sleep 0.1; done
R=(-sf -H 'X-Vault-Token: root')
curl "${R[@]}" -X POST $U/transit/keys/bench >/dev/null

measure() {  # token
  wrk -t2 -c32 -d5s -s bench/encrypt.lua "http://127.0.0.1:$PORT" -- "$1" bench >/dev/null
  wrk -t2 -c32 -d10s --latency -s bench/encrypt.lua "http://127.0.0.1:$PORT" -- "$1" bench \
    | awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print r" | "p50" | "p99}'
}

echo "| token | audit | encrypt req/s | p50 | p99 |"
echo "| --- | --- | --- | --- | --- |"
echo "| root | none | $(measure root) |"
curl "${R[@]}" -X PUT $U/sys/policies/acl/app \
  -d '{"policy":"path \"transit/encrypt/*\" { capabilities = [\"update\"] }"}' >/dev/null
TOKEN=$(curl "${R[@]}" -X POST $U/auth/token/create -d '{"policies":["app"],"ttl":"1h"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])')
curl "${R[@]}" -X PUT $U/sys/audit/file -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$AUDIT\"}}" >/dev/null
echo "| non-root (policy app) | file | $(measure "$TOKEN") |"
echo
echo "audit lines written: $(wc -l <"$AUDIT")"
rm -f "$AUDIT"
