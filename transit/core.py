"""The Vault core of one node: mount table, system engine, and request authentication.

For now the only credential is the root token (the token store and ACL policies come with
the Vault-core issue). The token is kept only as a SHA-256 digest and compared in constant
time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass, field

from transit import __version__
from transit.engines.mounts import EngineFactory, MountTable
from transit.engines.system.backend import SystemBackend
from transit.engines.transit.backend import TransitBackend
from transit.storage import Backend

log = logging.getLogger("transit.core")

ROOT_TOKEN_KEY = "core/root-token-sha256"

ENGINE_FACTORIES: dict[str, EngineFactory] = {"transit": TransitBackend}


def new_token() -> str:
    """A Vault-style service token: `hvs.` + 24 random base62-ish characters."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "hvs." + "".join(secrets.choice(alphabet) for _ in range(24))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class ClusterInfo:
    name: str = field(default_factory=lambda: f"vault-cluster-{secrets.token_hex(4)}")
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = __version__


class Core:
    def __init__(
        self, backend: Backend, *, storage_type: str = "inmem", cluster_name: str = ""
    ) -> None:
        self.backend = backend
        self.storage_type = storage_type
        self.mounts = MountTable(backend, ENGINE_FACTORIES)
        self.system = SystemBackend(self)
        self.cluster = ClusterInfo(name=cluster_name) if cluster_name else ClusterInfo()
        self.initialized = True
        self.sealed = False
        self._root_digest: bytes | None = None

    async def setup_dev(self, root_token: str) -> str:
        """Dev mode: a fixed (or random) root token and transit mounted at `transit/`."""
        token = root_token or new_token()
        self._root_digest = _digest(token)
        await self.mounts.load([("transit/", "transit", "")])
        return token

    async def setup(self) -> str | None:
        """A configured server. Until init/unseal exist, the first start creates the root
        token and stores its digest; returns the token only on that first start."""
        await self.mounts.load([])
        stored = await self.backend.get(ROOT_TOKEN_KEY)
        if stored is not None:
            self._root_digest = stored
            return None
        token = new_token()
        self._root_digest = _digest(token)
        await self.backend.put(ROOT_TOKEN_KEY, self._root_digest)
        return token

    def authenticate(self, token: str) -> bool:
        if not token or self._root_digest is None:
            return False
        return hmac.compare_digest(_digest(token), self._root_digest)

    async def run_periodic(self, interval: float = 60.0) -> None:
        """Call every mounted engine's `periodic()` (auto-rotation) forever."""
        while True:
            await asyncio.sleep(interval)
            for entry in self.mounts.entries():
                periodic = getattr(entry.engine, "periodic", None)
                if periodic is None:
                    continue
                try:
                    await periodic()
                except Exception:
                    log.exception("periodic task of mount %s failed", entry.path)
