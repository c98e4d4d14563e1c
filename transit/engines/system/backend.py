"""The `sys/` engine's route table. Unauthenticated status endpoints (health, seal-status,
leader) are answered by the API layer directly; everything here needs a token."""

from __future__ import annotations

from functools import partial
from typing import Any

from transit.engines.framework import DELETE, READ, UPDATE, Engine, Route
from transit.engines.mounts import MountTable
from transit.engines.system import mounts
from transit.engines.transit import tools


class SystemBackend(Engine):
    mount_type = "system"

    def __init__(self, mount_table: MountTable) -> None:
        self.mounts = mount_table
        b = self

        def h(fn: Any) -> Any:
            return partial(fn, b)

        super().__init__(
            [
                Route(r"mounts/?", {READ: h(mounts.list_mounts)}, {}),
                # The transit engine's stateless tools, also served under sys/ like Vault.
                Route(
                    r"tools/random(?:/(?P<source>[^/]+))?(?:/(?P<urlbytes>[^/]+))?",
                    {UPDATE: h(tools.random)},
                    tools.RANDOM_FIELDS,
                ),
                Route(r"tools/hash(?:/(?P<urlalgorithm>.+))?", {UPDATE: h(tools.hash)}, tools.HASH_FIELDS),
                Route(
                    r"mounts/(?P<path>(?:(?!/tune$).)+)",
                    {
                        READ: h(mounts.read_mount),
                        UPDATE: h(mounts.create_mount),
                        DELETE: h(mounts.delete_mount),
                    },
                    mounts.MOUNT_FIELDS,
                ),
            ]
        )
