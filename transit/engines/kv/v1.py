"""KV v1 (and `generic`): unversioned JSON blobs stored at their path, GET/PUT/DELETE/LIST."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.engines.framework import Engine, ExistenceCheck, Handler, Route
from transit.engines.kv.common import dumps, loads
from transit.errors import UserError
from transit.fields import (
    MAX_DURATION_SECONDS,
    Field,
    FieldData,
    FieldType,
    parse_duration,
)
from transit.logical import DELETE, LIST, MOUNT_DEFAULT_TTL, READ, UPDATE, Request, Response

PATH_FIELDS = {"path": Field(FieldType.STRING, "")}


class KVv1Backend(Engine):
    mount_type = "kv"
    version = 1

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        b = self

        def h(fn: Callable[[KVv1Backend, Request, FieldData], Awaitable[Any]]) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[KVv1Backend, Request, FieldData], Awaitable[bool]]) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__(
            [
                Route(
                    r"(?P<path>.*)",
                    {READ: h(read), UPDATE: h(write), DELETE: h(delete), LIST: h(list_keys)},
                    PATH_FIELDS,
                    existence_check=e(exists),
                )
            ]
        )

    def path_of(self, req: Request) -> str:
        return self.match(req.path)[1].get("path", "")


def _ttl(data: dict[str, Any]) -> int:
    for name in ("ttl", "lease"):
        if name in data:
            try:
                seconds = parse_duration(data[name])
            except ValueError:
                break
            if seconds > MAX_DURATION_SECONDS:  # no Go duration: Vault's parse fails too
                break
            return max(seconds, 0)
    return MOUNT_DEFAULT_TTL


async def exists(b: KVv1Backend, req: Request, d: FieldData) -> bool:
    return await b.storage.get(b.path_of(req)) is not None


async def read(b: KVv1Backend, req: Request, d: FieldData) -> Response | None:
    path = d.get("path")
    if not path or path.endswith("/"):
        return None
    data = loads(await b.storage.get(path))
    if data is None:
        return None
    return Response(data=data, lease_duration=_ttl(data))


async def write(b: KVv1Backend, req: Request, d: FieldData) -> None:
    path = d.get("path")
    if not path or path.endswith("/"):
        raise UserError("cannot write to a path ending in '/'")
    if not req.data:
        raise UserError("missing data fields")
    await b.storage.put(path, dumps(req.data))
    return None


async def delete(b: KVv1Backend, req: Request, d: FieldData) -> None:
    path = d.get("path")
    if path and not path.endswith("/"):
        await b.storage.delete(path)
    return None


async def list_keys(b: KVv1Backend, req: Request, d: FieldData) -> Response | None:
    prefix = d.get("path").lstrip("/")  # the mount root may arrive as "/"
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    keys = await b.storage.list(prefix)
    return Response(data={"keys": keys}) if keys else None
