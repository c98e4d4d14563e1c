#!/usr/bin/env bash
# Single-item encrypt req/s of one production-shaped node (Redis storage, static seal, initialised
# and unsealed by `transit cluster up`) with 1 worker and with 2 workers, and (if given) OpenBao
# `-dev` on the same machine, alternating round by round.
#
#   bench/workers_rps.sh [BAO_BINARY]        ROUNDS=3 DURATION=10s CONNS=32 THREADS=2
#
# wrk (THREADS threads, CONNS connections, 3 s warm-up, DURATION measured, bench/encrypt.lua,
# 30-byte plaintext) runs on the same cores as the servers. For each run the server's CPU
# (user+system of its whole process tree, from /proc) is divided by the requests wrk completed:
# CPU µs per request, and the cores it kept busy. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BAO=${1:-}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WORK=$(mktemp -d /tmp/workers-rps.XXXX)
TICKS=$(getconf CLK_TCK)
bao_pid=""
cleanup() {
  for w in 1 2; do .venv/bin/transit cluster down --dir "$WORK/w$w" >/dev/null 2>&1 || true; done
  [ -n "$bao_pid" ] && kill "$bao_pid" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

tree_ticks() {  # user+system ticks of a process and all its descendants
  local total=0 p
  for p in $(pstree -p -T "$1" | grep -o '([0-9]*)' | tr -d '()'); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

declare -A PORT TOKEN PID
for w in 1 2; do
  port=$((28800 + w * 100))
  .venv/bin/transit cluster up --nodes 1 --replicas 0 --workers "$w" --dir "$WORK/w$w" \
    --base-port "$port" --redis-port $((31900 + w)) >/dev/null
  PORT[w$w]=$port
  TOKEN[w$w]=$(cat "$WORK/w$w/root-token")
  PID[w$w]=$(pgrep -f -- "-config $WORK/w$w/" | head -1)
  curl -sf -H "X-Vault-Token: ${TOKEN[w$w]}" -X POST -d '{"type":"transit"}' \
    "http://127.0.0.1:$port/v1/sys/mounts/transit" >/dev/null
  curl -sf -H "X-Vault-Token: ${TOKEN[w$w]}" -X POST "http://127.0.0.1:$port/v1/transit/keys/bench" >/dev/null
done
names=(w1 w2)
if [ -n "$BAO" ]; then
  "$BAO" server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:28290 >"$WORK/bao.log" 2>&1 &
  bao_pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:28290/v1/sys/health >/dev/null && break; sleep 0.1; done
  curl -sf -H 'X-Vault-Token: root' -X POST -d '{"type":"transit"}' http://127.0.0.1:28290/v1/sys/mounts/transit >/dev/null
  curl -sf -H 'X-Vault-Token: root' -X POST http://127.0.0.1:28290/v1/transit/keys/bench >/dev/null
  PORT[bao]=28290; TOKEN[bao]=root; PID[bao]=$bao_pid
  names+=(bao)
fi
label() { case $1 in w1) echo "transit, 1 worker";; w2) echo "transit, 2 workers";; bao) echo "OpenBao 2.7.2 -dev";; esac; }

echo "load average at start: $(cut -d' ' -f1 /proc/loadavg)"
echo "| round | server | req/s | p50 | p99 | server CPU µs/request | server cores busy |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq "$ROUNDS"); do
  order=("${names[@]}")
  if [ $((r % 2)) -eq 0 ]; then order=($(printf '%s\n' "${names[@]}" | tac)); fi
  for n in "${order[@]}"; do
    url="http://127.0.0.1:${PORT[$n]}"
    wrk -t"$THREADS" -c"$CONNS" -d3s -s bench/encrypt.lua "$url" -- "${TOKEN[$n]}" bench >/dev/null
    before=$(tree_ticks "${PID[$n]}")
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/encrypt.lua "$url" -- "${TOKEN[$n]}" bench)
    after=$(tree_ticks "${PID[$n]}")
    reqs=$(grep -o '[0-9]* requests in' <<<"$out" | cut -d' ' -f1)
    secs=${DURATION%s}
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    cpu=$(awk -v t=$((after - before)) -v k="$TICKS" -v n="$reqs" 'BEGIN {printf "%.1f", t / k / n * 1e6}')
    cores=$(awk -v t=$((after - before)) -v k="$TICKS" -v s="$secs" 'BEGIN {printf "%.2f", t / k / s}')
    echo "| $r | $(label "$n") | $rps | $p50 | $p99 | $cpu | $cores |"
  done
done
echo "load average at end: $(cut -d' ' -f1 /proc/loadavg)"
