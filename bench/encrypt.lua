-- wrk script: single-item encrypt against /v1/transit/encrypt/<key>.
-- usage: wrk -t2 -c32 -d10s -s bench/encrypt.lua http://127.0.0.1:8200 -- <token> <key>
local token, key
function init(args)
  token = args[1] or "root"
  key = args[2] or "bench"
end
function request()
  return wrk.format("POST", "/v1/transit/encrypt/" .. key,
    {["X-Vault-Token"] = token, ["Content-Type"] = "application/json"},
    '{"plaintext":"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgMTIzNA=="}')
end
