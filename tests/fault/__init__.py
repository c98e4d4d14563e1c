"""Fault tests (DESIGN §8, issue 8 "Never lose a key version"): real `redis-server` (AOF on)
and `transit server` processes on loopback, concurrent clients on separate connections whose
every operation is recorded, faults injected (signals, a TCP proxy, Redis failover and data
loss), then heal, restart of every node, and history checkers.

    .venv/bin/pytest -q tests/fault                 # the whole suite (~2 min on 2 cores)
    .venv/bin/pytest -q -s tests/fault -k race      # one scenario, with its report printed
    FAULT_REPORT=/tmp/fault.jsonl .venv/bin/pytest -q tests/fault   # reports as JSON lines

Modules: `harness.py` (FaultCluster, History, Client, checkers, Report), `proxy.py`
(FaultProxy), and one test module per scenario group:

- test_workers_race.py    a. workers race on read-modify-write, no fault
- test_first_use.py       b. 32 clients x 20 new key names at once (aes256, rsa-2048)
- test_barrier_rotate.py  c. concurrent sys/rotate while keys and tokens are created
- test_storage_timeout.py d. Redis replies delayed past the storage timeout
- test_failover.py        e. failover lost-write trap; f. primary restarted (AOF / no data)
- test_forwarding.py      g. a forwarded write whose answer is lost
- test_single_writer.py   h. duplicate node id, KV cas, num_uses tokens, mount enables/tunes
- test_harness.py         the proxy and the checkers themselves (no servers)
"""
