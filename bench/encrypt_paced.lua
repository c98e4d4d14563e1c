-- wrk script: single-item encrypt, each connection pausing `delay_ms` before every request, so
-- that the offered rate is about connections * 1000 / (delay_ms + latency): a paced load below
-- the peak, for latency percentiles at a given fraction of peak throughput.
-- usage: wrk -t2 -c32 -d10s --latency -s bench/encrypt_paced.lua URL -- <token> <key> <delay_ms>
local token, key, pause
function init(args)
  token = args[1] or "root"
  key = args[2] or "bench"
  pause = tonumber(args[3] or "5")
end
function delay()
  return pause
end
function request()
  return wrk.format("POST", "/v1/transit/encrypt/" .. key,
    {["X-Vault-Token"] = token, ["Content-Type"] = "application/json"},
    '{"plaintext":"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgMTIzNA=="}')
end
