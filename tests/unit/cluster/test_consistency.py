"""X-Vault-Index: encoding, verification, the required index, and the stored HMAC key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

import pytest

from transit.barrier import Barrier
from transit.cluster.consistency import (
    INDEX_KEY_PATH,
    decode_index,
    encode_index,
    index_key,
    required_index,
)
from transit.errors import StorageError, UserError
from transit.storage.inmem import InmemBackend

CLUSTER = "0a1b2c3d-1111-2222-3333-444455556666"
KEY = bytes(range(32))


def raw(value: str) -> str:
    return base64.b64decode(value).decode()


def forge(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TestEncode:
    def test_format_is_vaults(self) -> None:
        value = encode_index(CLUSTER, 42, KEY)
        text = raw(value)
        message = f"v1:{CLUSTER}:42:0"
        mac = hmac.new(KEY, message.encode(), hashlib.sha256).hexdigest()
        assert text == f"{message}:{mac}"
        assert base64.b64encode(text.encode()).decode() == value  # std alphabet, padded

    @pytest.mark.parametrize("index", [0, 1, 7, 2**40])
    def test_round_trip(self, index: int) -> None:
        assert decode_index(encode_index(CLUSTER, index, KEY), CLUSTER, KEY) == index

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            encode_index(CLUSTER, -1, KEY)
        with pytest.raises(ValueError):
            encode_index("a:b", 1, KEY)


class TestDecodeRejects:
    def test_other_key(self) -> None:
        with pytest.raises(UserError):
            decode_index(encode_index(CLUSTER, 5, KEY), CLUSTER, os.urandom(32))

    def test_other_cluster(self) -> None:
        with pytest.raises(UserError):
            decode_index(encode_index("other-cluster", 5, KEY), CLUSTER, KEY)

    def test_index_changed_keeping_the_mac(self) -> None:
        text = raw(encode_index(CLUSTER, 5, KEY))
        forged = text.replace(f":{CLUSTER}:5:", f":{CLUSTER}:500:")
        with pytest.raises(UserError):
            decode_index(forge(forged), CLUSTER, KEY)

    def test_mac_flipped(self) -> None:
        text = raw(encode_index(CLUSTER, 5, KEY))
        flipped = text[:-1] + ("0" if text[-1] != "0" else "1")
        with pytest.raises(UserError):
            decode_index(forge(flipped), CLUSTER, KEY)

    @pytest.mark.parametrize("cut", [1, 10, 40, 64, 65])
    def test_truncated(self, cut: int) -> None:
        text = raw(encode_index(CLUSTER, 5, KEY))
        with pytest.raises(UserError):
            decode_index(forge(text[:-cut]), CLUSTER, KEY)

    def test_truncated_base64(self) -> None:
        value = encode_index(CLUSTER, 5, KEY)
        with pytest.raises(UserError):
            decode_index(value[:-3], CLUSTER, KEY)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "!!!not base64!!!",
            forge("v2:" + CLUSTER + ":1:0:" + "0" * 64),
            forge("v1:" + CLUSTER + ":x:0:" + "0" * 64),
            forge("v1:" + CLUSTER + ":-1:0:" + "0" * 64),
            forge("v1:" + CLUSTER + ":1:0"),
            forge("v1::1:0:" + "0" * 64),
            base64.b64encode(b"\xff\xfe").decode(),
        ],
    )
    def test_malformed(self, value: str) -> None:
        with pytest.raises(UserError):
            decode_index(value, CLUSTER, KEY)


class TestRequiredIndex:
    def test_none(self) -> None:
        assert required_index([], CLUSTER, KEY) == 0

    def test_max_of_repeated_headers(self) -> None:
        values = [encode_index(CLUSTER, n, KEY) for n in (3, 9, 4)]
        assert required_index(values, CLUSTER, KEY) == 9

    def test_comma_merged_values(self) -> None:
        merged = f"{encode_index(CLUSTER, 3, KEY)}, {encode_index(CLUSTER, 11, KEY)}"
        assert required_index([merged], CLUSTER, KEY) == 11

    def test_other_clusters_ignored(self) -> None:
        values = [encode_index("elsewhere", 100, os.urandom(32)), encode_index(CLUSTER, 2, KEY)]
        assert required_index(values, CLUSTER, KEY) == 2

    def test_forged_value_for_our_cluster_rejected(self) -> None:
        values = [encode_index(CLUSTER, 2, KEY), encode_index(CLUSTER, 100, os.urandom(32))]
        with pytest.raises(UserError):
            required_index(values, CLUSTER, KEY)

    def test_garbage_rejected(self) -> None:
        with pytest.raises(UserError):
            required_index(["garbage"], CLUSTER, KEY)


class TestIndexKey:
    async def _barrier(self) -> Barrier:
        barrier = Barrier(InmemBackend())
        root = os.urandom(32)
        await barrier.initialize(root)
        await barrier.unseal(root)
        return barrier

    def test_created_once_when_writable(self) -> None:
        async def go() -> None:
            barrier = await self._barrier()
            key = await index_key(barrier, writable=True)
            assert len(key) == 32
            assert await index_key(barrier, writable=True) == key
            assert await index_key(barrier, writable=False) == key
            stored = await barrier.physical.get(INDEX_KEY_PATH)
            assert stored is not None and key not in stored  # encrypted by the barrier
        asyncio.run(go())

    def test_standby_never_creates(self) -> None:
        async def go() -> None:
            barrier = await self._barrier()
            with pytest.raises(StorageError):
                await index_key(barrier, writable=False)
            assert await barrier.get(INDEX_KEY_PATH) is None
        asyncio.run(go())

    def test_read_only_barrier_is_a_standby(self) -> None:
        async def go() -> None:
            barrier = await self._barrier()
            barrier.read_only = True
            with pytest.raises(StorageError):
                await index_key(barrier)
            barrier.read_only = False
            key = await index_key(barrier)  # active: created
            barrier.read_only = True
            assert await index_key(barrier) == key
        asyncio.run(go())

    def test_corrupt_key(self) -> None:
        async def go() -> None:
            barrier = await self._barrier()
            await barrier.put(INDEX_KEY_PATH, b"short")
            with pytest.raises(StorageError):
                await index_key(barrier, writable=False)
        asyncio.run(go())
