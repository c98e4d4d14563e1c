#!/usr/bin/env bash
# Encrypt req/s with a policy-limited token and one file audit device, for one source tree
# (e.g. a `git archive` of an older commit), run with this checkout's venv:
#
#   mkdir /tmp/old && git archive <commit> | tar -x -C /tmp/old
#   bench/audit_rps_tree.sh /tmp/old 18401; bench/audit_rps_tree.sh . 18402   # alternate a few times
#
# wrk -t2 -c32: 3 s warm-up, 8 s measured; prints req/s. Used for issue 9's before/after.
set -euo pipefail
T=$1; PORT=$2
U=http://127.0.0.1:$PORT/v1
AUDIT=$(mktemp -d)/audit.log
PYTHONPATH=$T "$(dirname "$0")/../.venv/bin/python" -m transit server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:$PORT >/tmp/bis-$PORT.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf $(dirname $AUDIT)' EXIT
for _ in $(seq 100); do curl -sf $U/sys/health >/dev/null && break; sleep 0.1; done
R=(-sf -H 'X-Vault-Token: root')
curl "${R[@]}" -X POST $U/transit/keys/bench >/dev/null
curl "${R[@]}" -X PUT $U/sys/policies/acl/app -d '{"policy":"path \"transit/encrypt/*\" { capabilities = [\"update\"] }"}' >/dev/null
TOKEN=$(curl "${R[@]}" -X POST $U/auth/token/create -d '{"policies":["app"],"ttl":"1h"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth"]["client_token"])')
curl "${R[@]}" -X PUT $U/sys/audit/file -d "{\"type\":\"file\",\"options\":{\"file_path\":\"$AUDIT\"}}" >/dev/null
wrk -t2 -c32 -d3s -s "$(dirname "$0")/encrypt.lua" "http://127.0.0.1:$PORT" -- "$TOKEN" bench >/dev/null
wrk -t2 -c32 -d8s -s "$(dirname "$0")/encrypt.lua" "http://127.0.0.1:$PORT" -- "$TOKEN" bench | awk '/Requests\/sec/ {print $2}'
