"""The KV v2 engine: the one visible table of its routes (Vault's versioned K/V API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from transit.engines.framework import Engine, ExistenceCheck, Handler, Route
from transit.engines.kv import upgrade, v2_data, v2_metadata
from transit.engines.kv.common import PathLocks
from transit.engines.kv.store import KVStore
from transit.fields import FieldData
from transit.logical import CREATE, DELETE, LIST, READ, UPDATE, Request, Response

# Vault's logical.PatchOperation (HTTP PATCH with application/merge-patch+json).
PATCH = "patch"

_SUBCOMMANDS = {CREATE: "put", UPDATE: "put", READ: "get", LIST: "list", DELETE: "delete",
                PATCH: "patch"}


class KVv2Backend(Engine):
    mount_type = "kv"
    version = 2

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        self.store = KVStore(storage)
        self.locks = PathLocks()
        b = self

        def h(fn: Callable[[KVv2Backend, Request, FieldData], Awaitable[Any]]) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[KVv2Backend, Request, FieldData], Awaitable[bool]]) -> ExistenceCheck:
            return partial(fn, b)

        def invalid(op: str) -> Handler:
            return partial(invalid_path, op)

        super().__init__(
            [
                Route(
                    r"config",
                    {READ: h(v2_metadata.read_config), UPDATE: h(v2_metadata.write_config)},
                    v2_metadata.CONFIG_FIELDS,
                ),
                Route(
                    r"data/(?P<path>.*)",
                    {
                        READ: h(v2_data.read_data),
                        UPDATE: h(v2_data.write_data),
                        PATCH: h(v2_data.patch_data),
                        DELETE: h(v2_data.delete_latest),
                    },
                    v2_data.DATA_FIELDS,
                    existence_check=e(v2_data.data_exists),
                ),
                Route(r"delete/(?P<path>.*)", {UPDATE: h(v2_data.delete_versions)},
                      v2_data.VERSIONS_FIELDS),
                Route(r"undelete/(?P<path>.*)", {UPDATE: h(v2_data.undelete_versions)},
                      v2_data.VERSIONS_FIELDS),
                Route(r"destroy/(?P<path>.*)", {UPDATE: h(v2_data.destroy_versions)},
                      v2_data.VERSIONS_FIELDS),
                Route(
                    r"metadata(?:/(?P<path>.*))?",
                    {
                        READ: h(v2_metadata.read_metadata),
                        LIST: h(v2_metadata.list_metadata),
                        UPDATE: h(v2_metadata.write_metadata),
                        PATCH: h(v2_metadata.patch_metadata),
                        DELETE: h(v2_metadata.delete_metadata),
                    },
                    v2_metadata.METADATA_FIELDS,
                    existence_check=e(v2_metadata.metadata_exists),
                ),
                Route(r"subkeys/(?P<path>.*)", {READ: h(v2_data.read_subkeys)},
                      v2_data.SUBKEYS_FIELDS),
                Route(r".*", {op: invalid(op) for op in _SUBCOMMANDS}, {}),
            ]
        )

    async def setup(self) -> None:
        """Mark a fresh mount as v2, or finish upgrading a v1 mount's data in place."""
        await upgrade.ensure_v2(self.storage)

    def path_of(self, req: Request, d: FieldData | None = None) -> str:
        """The secret path a request addresses (for existence checks)."""
        return self.match(req.path)[1].get("path", "")


async def invalid_path(op: str, req: Request, d: FieldData) -> Response:
    resp = Response(status=404)
    resp.add_warning(
        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate "
        "API endpoints to use. If using the Vault CLI, use 'vault kv "
        f"{_SUBCOMMANDS.get(op, 'get')}' for this operation."
    )
    return resp
