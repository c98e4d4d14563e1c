#!/usr/bin/env bash
# Single-item encrypt requests per second, ours vs a reference Vault-family server, same machine.
#
#   bench/encrypt_rps.sh [BAO_BINARY]
#
# Starts `transit server -dev` and (if given) `bao server -dev` on loopback, creates an
# aes256-gcm96 key on each, and drives each in turn with wrk (2 threads, 32 connections,
# 10 s, 30-byte plaintext). Needs wrk (Debian package `wrk`). Prints a Markdown table row per server.
set -euo pipefail
cd "$(dirname "$0")/.."
BAO=${1:-}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
OURS_PORT=18200
BAO_PORT=18290
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/v1/sys/health" >/dev/null && return 0; sleep 0.1; done; return 1; }

run() {  # name port
  curl -sf -H 'X-Vault-Token: root' -X POST "http://127.0.0.1:$2/v1/transit/keys/bench" >/dev/null
  wrk -t2 -c"$CONNS" -d5s -s bench/encrypt.lua "http://127.0.0.1:$2" -- root bench >/dev/null  # warm-up
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/encrypt.lua "http://127.0.0.1:$2" -- root bench)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "| $1 | $rps | $p50 | $p99 |"
}

echo "| server | encrypt req/s | p50 | p99 |"
echo "| --- | --- | --- | --- |"
.venv/bin/transit server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$OURS_PORT >/tmp/bench-ours.log 2>&1 &
pids+=($!)
wait_up $OURS_PORT
run "transit (1 process)" $OURS_PORT
kill "${pids[-1]}"

if [ -n "$BAO" ]; then
  "$BAO" server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$BAO_PORT >/tmp/bench-bao.log 2>&1 &
  pids+=($!)
  wait_up $BAO_PORT
  curl -sf -H 'X-Vault-Token: root' -X POST -d '{"type":"transit"}' "http://127.0.0.1:$BAO_PORT/v1/sys/mounts/transit" >/dev/null || true
  run "$("$BAO" version | head -1) dev" $BAO_PORT
fi
