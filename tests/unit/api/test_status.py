"""The raw status endpoints (`transit/api/status.py`) over a real barrier and seal manager.

`_Core` carries only what the handlers read; the real Core's `initialize` also creates the
root token through the token store.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from transit.api import status
from transit.barrier import Barrier
from transit.errors import InvalidKey, UserError
from transit.seal.manager import SealManager
from transit.storage.inmem import InmemBackend


class _Core:
    def __init__(self, static_key: bytes | None = None) -> None:
        self.physical = InmemBackend()
        self.barrier = Barrier(self.physical)
        self.seal = SealManager(self.physical, self.barrier, static_key=static_key)
        self.cluster = SimpleNamespace(name="vault-cluster-test", id=str(uuid.uuid4()), version="1.0")
        self.storage_type = "inmem"
        self.post_unseal_calls = 0

    async def initialize(self, shares: int, threshold: int) -> dict[str, Any]:
        keys, _ = await self.seal.initialize(shares, threshold)
        if not self.seal.auto:
            self.seal.seal()
        return {
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "root_token": "hvs.test",
        }

    async def post_unseal(self) -> None:
        self.post_unseal_calls += 1


async def call(core: _Core, path: str, method: str = "GET", body: dict[str, Any] | None = None,
               query: dict[str, str] | None = None) -> tuple[int, Any]:
    code, raw = await status.STATUS_HANDLERS[path](core, method, query or {}, body or {})  # type: ignore[arg-type]
    return code, orjson.loads(raw)


def test_lifecycle_init_unseal_health() -> None:
    async def go() -> None:
        core = _Core()
        assert await call(core, "sys/init") == (200, {"initialized": False})
        code, health = await call(core, "sys/health")
        assert code == 501 and health["initialized"] is False and health["standby"] is True
        assert "cluster_name" not in health
        code, st = await call(core, "sys/seal-status")
        assert (st["type"], st["initialized"], st["sealed"], st["t"], st["n"]) == (
            "shamir", False, True, 0, 0)

        code, init = await call(core, "sys/init", "PUT", {"secret_shares": 5, "secret_threshold": 3})
        assert code == 200 and init["root_token"]
        assert len(init["keys"]) == 5 and all(len(k) == 66 for k in init["keys"])
        assert all(len(k) == 44 for k in init["keys_base64"])
        assert (await call(core, "sys/health"))[0] == 503
        assert (await call(core, "sys/health", query={"sealedcode": "299"}))[0] == 299

        code, st = await call(core, "sys/unseal", "PUT", {"key": init["keys"][0]})
        assert (code, st["sealed"], st["progress"], st["t"], st["n"]) == (200, True, 1, 3, 5)
        assert len(st["nonce"]) == 36 and "cluster_id" not in st
        code, st = await call(core, "sys/unseal", "POST", {"key": init["keys_base64"][1]})
        assert st["progress"] == 2
        code, st = await call(core, "sys/unseal", "PUT", {"KEY": init["keys"][3]})
        assert (st["sealed"], st["progress"], st["nonce"]) == (False, 0, "")
        assert st["cluster_id"] == core.cluster.id and st["storage_type"] == "inmem"
        assert core.post_unseal_calls == 1
        # already unsealed: the status again, post_unseal not repeated
        code, st = await call(core, "sys/unseal", "PUT", {"key": init["keys"][4]})
        assert (code, st["sealed"]) == (200, False) and core.post_unseal_calls == 1

        code, health = await call(core, "sys/health")
        assert code == 200 and health["cluster_name"] == core.cluster.name
        assert health["standby"] is False
        assert (await call(core, "sys/health", query={"activecode": "204"}))[0] == 204
        assert await call(core, "sys/health", query={"activecode": "x"}) == (400, {"errors": []})
        assert await call(core, "sys/health", query={"standbyok": "maybe"}) == (400, {"errors": []})
        assert (await call(core, "sys/init"))[1] == {"initialized": True}

    asyncio.run(go())


def test_health_uninit_override_and_verbs() -> None:
    async def go() -> None:
        core = _Core()
        assert (await call(core, "sys/health", "HEAD", query={"uninitcode": "200"}))[0] == 200
        for path, verb in (("sys/health", "PUT"), ("sys/seal-status", "POST"),
                           ("sys/unseal", "GET"), ("sys/init", "DELETE"), ("sys/leader", "PUT")):
            assert await call(core, path, verb) == (405, {"errors": []})

    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "invalid seal configuration: shares must be at least one"),
        ({"secret_shares": 3, "secret_threshold": 5},
         "invalid seal configuration: threshold cannot be larger than shares"),
        ({"secret_shares": 3, "secret_threshold": 1},
         "invalid seal configuration: threshold must be greater than one for multiple shares"),
        ({"secret_shares": 300, "secret_threshold": 3},
         "invalid seal configuration: shares must be less than 256"),
        ({"secret_shares": "5", "secret_threshold": 3},
         "json: cannot unmarshal string into Go struct field InitRequest.secret_shares of type int"),
        ({"secret_shares": 5.5, "secret_threshold": 3},
         "json: cannot unmarshal number 5.5 into Go struct field InitRequest.secret_shares of type int"),
        ({"secret_shares": 5, "secret_threshold": 3, "recovery_shares": 5},
         "parameters recovery_shares not applicable to seal type shamir"),
        ({"secret_shares": 2, "secret_threshold": 2, "pgp_keys": ["a"]},
         "invalid seal configuration: count mismatch between number of provided PGP keys and number of shares"),
        ({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["a"]},
         "PGP encryption of unseal keys and root token is not supported"),
        ({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": "a"},
         "json: cannot unmarshal string into Go struct field InitRequest.pgp_keys of type []string"),
    ],
)
def test_init_bad_input(body: dict[str, Any], message: str) -> None:
    async def go() -> None:
        core = _Core()
        with pytest.raises(UserError) as exc:
            await call(core, "sys/init", "PUT", body)
        assert str(exc.value) == message
        assert await core.physical.list("") == []

    asyncio.run(go())


def test_init_twice() -> None:
    async def go() -> None:
        core = _Core()
        await call(core, "sys/init", "PUT", {"secret_shares": 1, "secret_threshold": 1})
        with pytest.raises(UserError, match="^Vault is already initialized$"):
            await call(core, "sys/init", "PUT", {"secret_shares": 1, "secret_threshold": 1})

    asyncio.run(go())


def test_unseal_bad_input_and_reset() -> None:
    async def go() -> None:
        core = _Core()
        _, init = await call(core, "sys/init", "PUT", {"secret_shares": 3, "secret_threshold": 2})
        bad = [
            ({}, "'key' must be specified in request body as JSON, or 'reset' set to true"),
            ({"key": "not hex or base64!"}, "'key' must be a valid hex or base64 string"),
            ({"key": "abc"}, "'key' must be a valid hex or base64 string"),
            ({"key": base64.b64encode(b"x" * 8).decode()}, "key is shorter than minimum 16 bytes"),
            ({"key": base64.b64encode(b"x" * 40).decode()}, "key is longer than maximum 33 bytes"),
            ({"key": init["keys"][0], "migrate": True},
             "'migrate' parameter set true in JSON body when not in seal migration mode"),
            ({"key": 12}, "json: cannot unmarshal number 12 into Go struct field UnsealRequest.key of type string"),
            ({"reset": "true"}, "json: cannot unmarshal string into Go struct field UnsealRequest.reset of type bool"),
        ]
        for body, message in bad:
            with pytest.raises(UserError) as exc:
                await call(core, "sys/unseal", "PUT", body)
            assert str(exc.value) == message, body
        await call(core, "sys/unseal", "PUT", {"key": init["keys"][0]})
        code, st = await call(core, "sys/unseal", "PUT", {"reset": True})
        assert (code, st["progress"], st["nonce"]) == (200, 0, "")
        # a share of another store: generic error, progress reset
        other = _Core()
        _, other_init = await call(other, "sys/init", "PUT", {"secret_shares": 3, "secret_threshold": 2})
        await call(core, "sys/unseal", "PUT", {"key": init["keys"][0]})
        with pytest.raises(InvalidKey, match="^Unseal failed, invalid key$"):
            await call(core, "sys/unseal", "PUT", {"key": other_init["keys"][1]})
        assert (await call(core, "sys/seal-status"))[1]["progress"] == 0
        await call(core, "sys/unseal", "PUT", {"key": init["keys"][1]})
        _, st = await call(core, "sys/unseal", "PUT", {"key": init["keys"][2]})
        assert st["sealed"] is False
        with pytest.raises(UserError, match="^vault is unsealed$"):
            await call(core, "sys/unseal", "PUT", {"reset": True})

    asyncio.run(go())


def test_unseal_uninitialized() -> None:
    async def go() -> None:
        with pytest.raises(UserError, match="^Vault is not initialized$"):
            await call(_Core(), "sys/unseal", "PUT", {"key": os.urandom(33).hex()})

    asyncio.run(go())


def test_static_seal_init_returns_recovery_keys() -> None:
    async def go() -> None:
        core = _Core(static_key=os.urandom(32))
        with pytest.raises(UserError, match="^parameters secret_shares,secret_threshold not applicable to seal type static$"):
            await call(core, "sys/init", "PUT", {"secret_shares": 5, "secret_threshold": 3})
        code, init = await call(core, "sys/init", "PUT", {"recovery_shares": 5, "recovery_threshold": 3})
        assert code == 200 and init["keys"] == [] and init["keys_base64"] == []
        assert len(init["recovery_keys"]) == 5 and len(init["recovery_keys_base64"]) == 5
        code, st = await call(core, "sys/seal-status")
        assert (st["type"], st["sealed"], st["recovery_seal"], st["t"], st["n"]) == (
            "static", False, True, 3, 5)
        assert (await call(core, "sys/health"))[0] == 200

    asyncio.run(go())


def test_health_says_why_a_standby_is_not_serving_yet() -> None:
    """A standby still waiting for replicated state reports 429 (not a performance standby)
    and the reason; a node without a problem has no such field (Vault's body unchanged)."""

    async def go() -> None:
        core = _Core(static_key=bytes(32))
        await call(core, "sys/init", "PUT", {"recovery_shares": 1, "recovery_threshold": 1})
        code, health = await call(core, "sys/health")
        assert code == 200 and "standby_problem" not in health
        core.standby = True  # type: ignore[attr-defined]
        core.perf_standby = False  # type: ignore[attr-defined]
        core.serving_problem = "cannot load state for performance standby mode yet: x"  # type: ignore[attr-defined]
        code, health = await call(core, "sys/health")
        assert code == 429 and health["performance_standby"] is False
        assert health["standby_problem"].startswith("cannot load state")

    asyncio.run(go())


def test_health_answers_503_while_storage_is_unreachable() -> None:
    """A node whose storage cannot be reached (e.g. started before its Redis) answers health
    as sealed (503) and says why; it never turns the request into a 500."""
    from transit.errors import Unavailable

    async def go() -> None:
        core = _Core(static_key=bytes(32))

        async def unreachable() -> dict[str, Any]:
            raise Unavailable("redis 127.0.0.1:1 unreachable during get: refused")

        core.seal.status = unreachable  # type: ignore[method-assign]
        code, health = await call(core, "sys/health")
        assert code == 503
        assert health["sealed"] is True and health["initialized"] is False
        assert health["standby_problem"].startswith("storage unreachable: redis")
        code, _ = await call(core, "sys/health", query={"sealedcode": "299"})
        assert code == 299

    asyncio.run(go())
