"""The Redis storage backend (contract: docs/dev/contracts.md §6.1), one module per job.

Layout under a prefix `p` (default "transit"):

- `p/<key>`            a value (Redis string, raw bytes)
- `p:list:<folder>`    ZSET (all scores 0, so ordered by bytes) of the immediate children of
                       `<folder>` ("" or ending in "/"): leaf names, and sub-folders with a "/"
- `p/core/lock`        the HA lock, value `"<owner>:<epoch>"` (split at the LAST ":"; the
                       owner is `<node_id>@<instance>`, see transit/cluster/identity.py)
- `p/core/epoch`       INCR on every lock acquisition (never below what the caller has seen)
- `p/core/index`       the write index: INCR on every written entry
- `p/core/sync`        scratch key for WAIT (never a stored entry)
- channel `p/invalidate`  one message `"<index> <key>"` per written entry

The modules, lowest first (each imports only those above it in this list):

- `options`:     how to reach Redis (addresses, auth, TLS), shared with the invalidation feed
- `scripts`:     the Lua scripts: every write (fenced, guarded), the lock's acquire/renew/release
- `persistence`: would this Redis lose acknowledged writes (AOF, fsync, eviction)?
- `connection`:  `RedisConnection`, one backend's clients (primary or Sentinel, writer, read
                 replica), its identity (connection names) and Redis errors as storage errors
- `lock`:        `RedisHALock`, the HA lock on those clients, and the lock value's format
- `durability`:  `RedisDurability`, replica acknowledgements (WAIT), the persistence check
                 and the write index
- `backend`:     `RedisBackend`, the `Backend` contract (get/put/delete/list, guarded commit)
                 on top of the lock and durability: what `storage "redis"` builds
"""
