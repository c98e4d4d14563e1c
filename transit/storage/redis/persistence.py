"""Would this Redis lose writes we acknowledged? (DESIGN §7, "Acknowledge only what is durable")

A 2xx for a write means the Redis primary has it in its append-only file. That holds only
when Redis is configured for it, so the active node checks the primary at start and refuses
to start (storage option `persistence_check = "refuse"`, the default) or logs the problems
loudly (`"warn"`).

    assessment = assess(info_persistence, config, role)   # pure: no I/O
    assessment = await check(client)                      # reads a live server
    assessment.ok, assessment.problems, assessment.notes, assessment.summary()

`problems` are settings under which Redis can lose acknowledged writes; any problem fails
the check. `notes` are worth a log line but lose nothing acknowledged on their own (the
`everysec` window, a setting that could not be read, a full-memory refusal).

The rules:

- `appendonly` must be `yes`. Without AOF a restarted primary comes back with its last RDB
  snapshot or empty, and its replicas then resynchronise to that.
- `appendfsync no` is a problem: the OS flushes when it likes (~30 s on Linux), so an OS crash
  or power loss of the primary loses that much. `everysec` (note): a Redis *process* crash
  loses nothing acknowledged (Redis writes the AOF to the kernel before it replies; only
  while a slow disk is still busy with the previous fsync does it hold that write back, for
  up to 2 s, and say so in `aof_delayed_fsync`), an OS crash or power loss up to ~1 s (2 s
  when the disk stalls). `always` (note): none; Redis fsyncs before it replies.
- `maxmemory-policy` must be `noeviction`, whatever `maxmemory` is: any other policy lets
  Redis delete stored entries (key versions, the keyring, tokens) to make room, and
  `maxmemory` can be raised from 0 at runtime (`CONFIG SET`, or by a managed service) without
  anyone restarting this node. With `noeviction` a full Redis refuses writes (an error, not a
  loss); a `maxmemory` above 0 is noted for that reason.
- A setting that cannot be read is a problem when it decides between safe and lossy
  (`appendonly`, `maxmemory-policy`) and a note for `appendfsync` when AOF is known to be on
  (it cannot be read without `CONFIG`; managed services rarely allow `no`).

`check` reads `CONFIG GET` for `appendonly`, `appendfsync`, `no-appendfsync-on-rewrite`,
`maxmemory` and `maxmemory-policy` (one parameter per call: Redis < 7 takes one pattern) and
`INFO persistence` / `INFO replication`. Where `CONFIG` is renamed, disabled or denied by an
ACL (common on managed Redis), it falls back to `INFO persistence` (`aof_enabled`) and `INFO
memory` (`maxmemory`, `maxmemory_policy`) and says so in a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from transit.errors import StorageError

CONFIG_PARAMETERS = (
    "appendonly", "appendfsync", "no-appendfsync-on-rewrite", "maxmemory", "maxmemory-policy",
)

EVERYSEC_NOTE = (
    "appendfsync is 'everysec': a crash of the Redis process loses no acknowledged write "
    "(unless the disk stalls: then up to 2 s), but an OS crash or power loss of the primary "
    "can lose the last ~1 s of them (2 s when the disk stalls); 'appendfsync always' closes "
    "that window at a cost in write latency"
)
ALWAYS_NOTE = "appendfsync is 'always': every write is fsynced before Redis acknowledges it"


@dataclass(frozen=True)
class Assessment:
    """The outcome of a persistence check: `problems` fail it, `notes` are informational."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem found: Redis keeps what it acknowledges (within the noted windows)."""
        return not self.problems

    def summary(self) -> str:
        """The problems as one line ("" when there are none), for an error or a warning."""
        return "; ".join(self.problems)


def _text(value: Any) -> str | None:
    """A setting as lower-case text; None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    text = str(value).strip().lower()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(_text(value) or "")
    except ValueError:
        return None


def assess(
    info_persistence: Mapping[str, Any], config: Mapping[str, str], role: str
) -> Assessment:
    """Judge a Redis server's durability settings; no I/O.

    `info_persistence`: the fields of `INFO persistence` (as parsed by redis-py: ints or
    strings; `aof_enabled`, `aof_delayed_fsync`, `aof_last_write_status` and
    `aof_last_bgrewrite_status` are used).
    `config`: `CONFIG GET` results by parameter name (`appendonly`, `appendfsync`,
    `no-appendfsync-on-rewrite`, `maxmemory`, `maxmemory-policy`); a missing name means "could
    not be read". `role`: `INFO replication`'s `role` (`master`, or `slave` for a replica; ""
    when unknown). The same rules apply to every role: a replica's settings are the primary's
    once it is promoted.
    """
    problems: list[str] = []
    notes: list[str] = []

    appendonly = _text(config.get("appendonly"))
    if appendonly is None:
        enabled = _int(info_persistence.get("aof_enabled"))
        appendonly = None if enabled is None else ("yes" if enabled else "no")
    if appendonly is None:
        problems.append("AOF state unknown (neither CONFIG GET appendonly nor INFO persistence "
                        "aof_enabled could be read): cannot tell whether Redis keeps writes "
                        "across a restart")
    elif appendonly != "yes":
        problems.append(f"appendonly is '{appendonly}': without AOF a restarted Redis primary "
                        "comes back with its last RDB snapshot or empty, and its replicas "
                        "resynchronise to that, losing acknowledged writes; set "
                        "'appendonly yes' with 'appendfsync everysec' or 'always'")

    if appendonly == "yes":
        fsync = _text(config.get("appendfsync"))
        if fsync is None:
            notes.append("appendfsync could not be read: check that it is 'everysec' (an OS "
                         "crash or power loss of the primary loses up to ~1 s) or 'always'; "
                         "'no' can lose ~30 s")
        elif fsync == "everysec":
            notes.append(EVERYSEC_NOTE)
        elif fsync == "always":
            notes.append(ALWAYS_NOTE)
        elif fsync == "no":
            problems.append("appendfsync is 'no': the OS writes the AOF to disk when it likes "
                            "(~30 s on Linux), so an OS crash or power loss of the primary "
                            "loses that much acknowledged data; set 'appendfsync everysec' "
                            "(up to ~1 s) or 'always' (none)")
        else:
            problems.append(f"appendfsync is '{fsync}', which this check does not know; use "
                            "'everysec' or 'always'")
        if fsync in ("everysec", "always") and _text(
                config.get("no-appendfsync-on-rewrite")) == "yes":
            notes.append("no-appendfsync-on-rewrite is 'yes': while an AOF rewrite or RDB "
                         "save runs, Redis skips fsync, so an OS crash or power loss then "
                         "can lose up to ~30 s of acknowledged writes")
        delayed = _int(info_persistence.get("aof_delayed_fsync"))
        if fsync == "everysec" and delayed:
            notes.append(f"INFO persistence aof_delayed_fsync is {delayed}: the disk has been "
                         "too slow for 'everysec', so Redis held AOF writes back (up to 2 s) "
                         "while acknowledging them; a crash then loses them")
        for field in ("aof_last_write_status", "aof_last_bgrewrite_status"):
            status = _text(info_persistence.get(field))
            if status is not None and status != "ok":
                notes.append(f"INFO persistence {field} is '{status}': Redis failed to write "
                             "its AOF (disk full or I/O error?) and refuses writes until it "
                             "succeeds again")

    policy = _text(config.get("maxmemory-policy"))
    maxmemory = _int(config.get("maxmemory"))
    if policy is None:
        problems.append("maxmemory-policy unknown (neither CONFIG GET nor INFO memory could be "
                        "read): cannot rule out that Redis evicts stored entries")
    elif policy != "noeviction":
        limit = "no limit yet" if maxmemory == 0 else (
            f"{maxmemory} bytes" if maxmemory is not None else "unknown")
        problems.append(f"maxmemory-policy is '{policy}' (maxmemory: {limit}): when Redis "
                        "reaches maxmemory it deletes stored entries (key versions, the "
                        "keyring, tokens) to make room, and maxmemory can be set at runtime; "
                        "set 'maxmemory-policy noeviction'")
    elif maxmemory:
        notes.append(f"maxmemory is {maxmemory} bytes with noeviction: once Redis is full it "
                     "refuses writes with an OOM error (refused, nothing lost)")

    if _text(role) not in ("master", None):
        notes.append(f"this Redis server's role is '{role}', not 'master': the settings above "
                     "matter once it is promoted; the active node writes to the primary")
    return Assessment(tuple(problems), tuple(notes))


async def _config_get(client: Redis) -> tuple[dict[str, str], str | None]:
    """CONFIG GET each parameter: (values read, why CONFIG is unavailable or None)."""
    values: dict[str, str] = {}
    for name in CONFIG_PARAMETERS:
        try:
            reply = await client.config_get(name)
        except ResponseError as exc:  # renamed/disabled ("unknown command"), ACL NOPERM
            return values, str(exc) or type(exc).__name__
        for key, value in reply.items():
            key = key.decode() if isinstance(key, bytes) else str(key)
            if key.lower() == name and value is not None:
                values[name] = value.decode() if isinstance(value, bytes) else str(value)
    return values, None


async def _info(client: Redis, section: str) -> dict[str, Any] | None:
    """One INFO section; None when the server refuses it (ACL)."""
    try:
        return dict(await client.info(section))
    except ResponseError:
        return None


async def check(client: Redis) -> Assessment:
    """Read the durability settings of the server `client` talks to and `assess` them.

    Falls back to INFO when CONFIG is renamed, disabled or denied (a note says so). Raises
    `StorageError` when Redis cannot be reached (connection refused, timeout): nothing can be
    concluded then, and the caller decides whether to retry.
    """
    try:
        config, config_error = await _config_get(client)
        persistence = await _info(client, "persistence")
        replication = await _info(client, "replication")
        memory: dict[str, Any] | None = None
        if "maxmemory-policy" not in config or "maxmemory" not in config:
            memory = await _info(client, "memory")
    except (RedisError, OSError) as exc:  # connection refused or lost, timeout, auth
        raise StorageError(f"redis persistence check: {exc}") from None

    notes: list[str] = []
    if config_error is not None:
        notes.append(f"CONFIG GET is unavailable ({config_error}): AOF state read from INFO "
                     "persistence, maxmemory-policy from INFO memory; appendfsync cannot be "
                     "checked")
    if persistence is None:
        notes.append("INFO persistence is not allowed for this Redis user")
    if memory is not None:
        if "maxmemory-policy" not in config and memory.get("maxmemory_policy") is not None:
            config["maxmemory-policy"] = str(memory["maxmemory_policy"])
        if "maxmemory" not in config and memory.get("maxmemory") is not None:
            config["maxmemory"] = str(memory["maxmemory"])
    role = str((replication or {}).get("role", ""))
    result = assess(persistence or {}, config, role)
    return Assessment(result.problems, tuple(notes) + result.notes)
