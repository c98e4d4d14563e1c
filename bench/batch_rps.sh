#!/usr/bin/env bash
# Batch encrypt and decrypt items per second (250 x 64 B), ours vs a reference Vault-family
# server, same machine, same run, in alternating order.
#
#   bench/batch_rps.sh [BAO_BINARY]        # ROUNDS=2 DURATION=10s CONNS=8 ITEMS=250
#
# Starts `transit server -dev` (one process) and (if given) `bao server -dev`, creates an
# aes256-gcm96 key on each, builds one batch body of ITEMS random 64-byte plaintexts and the
# matching decrypt body from each server's own ciphertexts, and drives each with wrk
# (bench/peak.lua: one fixed POST). Prints a Markdown table row per server, operation and round.
set -euo pipefail
cd "$(dirname "$0")/.."
BAO=${1:-}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
ITEMS=${ITEMS:-250}
ROUNDS=${ROUNDS:-2}
OURS_PORT=18200
BAO_PORT=18290
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/v1/sys/health" >/dev/null && return 0; sleep 0.1; done; return 1; }

.venv/bin/python - "$ITEMS" "$work/encrypt.json" <<'PY'
import base64, json, os, sys
n, out = int(sys.argv[1]), sys.argv[2]
items = [{"plaintext": base64.b64encode(os.urandom(64)).decode()} for _ in range(n)]
open(out, "w").write(json.dumps({"batch_input": items}))
PY

prepare() {  # port name: key + decrypt body from this server's ciphertexts
  curl -sf -H 'X-Vault-Token: root' -X POST "http://127.0.0.1:$1/v1/transit/keys/bench" >/dev/null
  curl -sf -H 'X-Vault-Token: root' -X POST --data-binary @"$work/encrypt.json" \
    "http://127.0.0.1:$1/v1/transit/encrypt/bench" | .venv/bin/python -c '
import json, sys
res = json.load(sys.stdin)["data"]["batch_results"]
print(json.dumps({"batch_input": [{"ciphertext": r["ciphertext"]} for r in res]}))' >"$work/decrypt-$2.json"
}

run() {  # label port name op
  body="$work/encrypt.json"
  [ "$4" = decrypt ] && body="$work/decrypt-$3.json"
  path="/v1/transit/$4/bench"
  wrk -t1 -c"$CONNS" -d3s -s bench/peak.lua "http://127.0.0.1:$2" -- root "$path" "$body" >/dev/null
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s bench/peak.lua "http://127.0.0.1:$2" -- root "$path" "$body")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  items=$(awk -v r="$rps" -v n="$ITEMS" 'BEGIN {printf "%.0f", r * n}')
  echo "| $1 | $4 | $rps | $items | $p99 |"
}

.venv/bin/transit server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$OURS_PORT >"$work/ours.log" 2>&1 &
pids+=($!)
wait_up $OURS_PORT
prepare $OURS_PORT ours
if [ -n "$BAO" ]; then
  "$BAO" server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$BAO_PORT >"$work/bao.log" 2>&1 &
  pids+=($!)
  wait_up $BAO_PORT
  curl -sf -H 'X-Vault-Token: root' -X POST -d '{"type":"transit"}' "http://127.0.0.1:$BAO_PORT/v1/sys/mounts/transit" >/dev/null || true
  prepare $BAO_PORT bao
  BAO_NAME="$("$BAO" version | head -1 | cut -d" " -f1,2) -dev"
fi
echo "| server | operation | req/s | items/s | p99 |"
echo "| --- | --- | --- | --- | --- |"
for round in $(seq "$ROUNDS"); do
  for op in encrypt decrypt; do
    if [ -n "$BAO" ] && [ $((round % 2)) -eq 0 ]; then
      run "$BAO_NAME" $BAO_PORT bao $op; run "transit -dev (1 process)" $OURS_PORT ours $op
    else
      run "transit -dev (1 process)" $OURS_PORT ours $op
      [ -n "$BAO" ] && run "$BAO_NAME" $BAO_PORT bao $op
    fi
  done
done
