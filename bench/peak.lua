-- wrk script: one fixed POST, repeated as fast as the connections allow (a peak measurement
-- with a generator far lighter than locust). Used by bench/matrix.py for encrypt.
-- usage: wrk -t2 -c32 -d10s --latency -s bench/peak.lua http://127.0.0.1:8200 -- \
--          <token> <path, e.g. /v1/transit/encrypt/bench-aes256-gcm96> <file holding the JSON body>
local token, path, body
function init(args)
  token = args[1] or "root"
  path = args[2] or "/v1/transit/encrypt/bench-aes256-gcm96"
  local f = assert(io.open(args[3], "rb"))
  body = f:read("*a")
  f:close()
end
function request()
  return wrk.format("POST", path,
    {["X-Vault-Token"] = token, ["Content-Type"] = "application/json"}, body)
end
