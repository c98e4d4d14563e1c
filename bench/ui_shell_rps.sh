#!/usr/bin/env bash
# encrypt req/s with ui = true vs ui = false (issue 16: the web UI's application shell in front
# of the API app; results/2026-12-07-ui-shell.md): two config-file servers, identical but for `ui`,
# measured in alternation (wrk -t2 -c32 -d10s after a 3 s warm-up, bench/peak.lua, 16-byte
# plaintext, aes256-gcm96, root token, inmem storage, no audit).
set -euo pipefail
cd "$(dirname "$0")/.."  # the repository
PY=.venv/bin/python
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
echo '{"plaintext":"aGVsbG8gd29ybGQ="}' > "$tmp/body.json"
declare -A port token
for ui in false true; do
  p=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  port[$ui]=$p
  printf 'storage "inmem" {}\nlistener "tcp" {\n  address = "127.0.0.1:%s"\n  tls_disable = true\n}\nui = %s\nlog_level = "warn"\n' "$p" "$ui" > "$tmp/$ui.hcl"
  $PY -m transit server -config="$tmp/$ui.hcl" > "$tmp/$ui.log" 2>&1 &
  pids+=($!)
  addr="http://127.0.0.1:$p"
  for _ in $(seq 100); do curl -sf "$addr/v1/sys/seal-status" >/dev/null && break; sleep 0.1; done
  init=$(curl -sf -X PUT "$addr/v1/sys/init" -d '{"secret_shares":1,"secret_threshold":1}')
  key=$(echo "$init" | $PY -c 'import json,sys; print(json.load(sys.stdin)["keys_base64"][0])')
  token[$ui]=$(echo "$init" | $PY -c 'import json,sys; print(json.load(sys.stdin)["root_token"])')
  curl -sf -X PUT "$addr/v1/sys/unseal" -d "{\"key\":\"$key\"}" >/dev/null
  curl -sf -H "X-Vault-Token: ${token[$ui]}" -X POST "$addr/v1/sys/mounts/transit" -d '{"type":"transit"}'
  curl -sf -H "X-Vault-Token: ${token[$ui]}" -X POST "$addr/v1/transit/keys/bench-aes256-gcm96" >/dev/null
  echo "ui=$ui on $addr: /ui/ -> $(curl -s -o /dev/null -w '%{http_code}' "$addr/ui/")"
done
for round in $(seq "$ROUNDS"); do
  for ui in false true; do
    addr="http://127.0.0.1:${port[$ui]}"
    args=(-s bench/peak.lua "$addr" -- "${token[$ui]}" /v1/transit/encrypt/bench-aes256-gcm96 "$tmp/body.json")
    wrk -t2 -c32 -d3s "${args[@]}" >/dev/null
    out=$(wrk -t2 -c32 -d10s --latency "${args[@]}")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "round $round ui=$ui req/s=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0} load=$(cut -d' ' -f1 /proc/loadavg)"
  done
done
