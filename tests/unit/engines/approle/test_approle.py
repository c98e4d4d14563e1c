"""AppRole's pure rules (transit/engines/approle/model.py): secret-ID metadata parsing
(Vault's strutil.ParseArbitraryKeyValues), Go's CIDR parsing and the subset check, the
HMACs, and the stored entries' round trip; plus the store's use-limited spend against an
in-memory backend (one writer: racing spends never exceed the uses)."""

from __future__ import annotations

import asyncio
import base64

import pytest

from transit.engines.approle.model import (
    Role,
    SecretID,
    create_hmac,
    invalid_cidr,
    is_subset,
    parse_cidr,
    parse_metadata,
    subset_error,
)
from transit.engines.approle.store import AppRoleStore
from transit.errors import InternalError, UserError
from transit.storage.inmem import InmemBackend
from transit.tokenutil import TokenParams


@pytest.mark.parametrize("text, expected", [
    ("", {}),
    ("   ", {}),
    ('{"team":"Blue","x":"y"}', {"team": "Blue", "x": "y"}),
    ('  {"a":"b"} trailing', {"a": "b"}),  # Go's decoder reads the first value only
    ("Team=A, x=Y", {"team": "a", "x": "y"}),  # k=v pairs are lowercased
    ("a=b,a=b", {"a": "b"}),
    (base64.b64encode(b'{"k":"v"}').decode(), {"k": "v"}),
    ('{"":"x"}', {"": "x"}),
])
def test_metadata_accepted(text: str, expected: dict[str, str]) -> None:
    assert parse_metadata(text) == expected


@pytest.mark.parametrize("text, message", [
    ("a=b=c", "failed to parse metadata: failed to parse the input: invalid <key,value> "
              "format"),
    ('{"a":1}', "failed to parse metadata: failed to parse the input: invalid <key,value> "
                "format"),
    ("null", "failed to parse metadata: failed to parse the input: invalid <key,value> "
             "format"),  # valid base64: decoded first, as Vault does
    ('{"a":""}', 'failed to parse metadata: invalid value for key "a"'),
    ("a=", "failed to parse metadata: failed to parse the input: invalid <key,value> format"),
])
def test_metadata_refused(text: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        parse_metadata(text)
    assert err.value.message == message


def test_go_cidrs() -> None:
    assert parse_cidr("10.0.0.1/8") is not None  # host bits may be set
    assert parse_cidr("::1/128") is not None
    for bad in ("10.0.0.1", "bad", "10.0.0.0/33", "10.0.0.0/x", "010.0.0.0/8",
                "10.0.0.0/255.0.0.0", "fe80::1%eth0/64", ""):
        assert parse_cidr(bad) is None, bad
    assert invalid_cidr(["10.0.0.0/8", " bad "]) == "invalid CIDR address: bad"
    assert invalid_cidr([]) is None


def test_subset() -> None:
    assert is_subset(["10.0.0.0/8"], ["10.1.0.0/16", "10.2.3.4/32"])
    assert not is_subset(["10.0.0.0/16"], ["10.0.0.0/8"])
    assert is_subset(["127.0.0.1"], ["127.0.0.1/32"])  # a host address is its /32
    assert not is_subset(["::/0"], ["10.0.0.0/8"])
    assert subset_error([], ["10.0.0.0/8"]) is None
    assert subset_error(["127.0.0.1"], ["10.0.0.0/8"]) == (
        'failed to verify subset relationship between CIDR blocks on the role '
        '["127.0.0.1/32"] and CIDR blocks on the secret ID ["10.0.0.0/8"]: %!w(<nil>)')


def test_hmac_and_round_trips() -> None:
    # Vault's createHMAC: hex HMAC-SHA256 keyed with the role's hmac_key string
    assert create_hmac("key", "value") == (
        "90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481")
    role = Role(name="web", role_id="rid", hmac_key="k", secret_id_bound_cidrs=None,
                token=TokenParams(policies=["a"], legacy=["policies"]))
    again = Role.from_json(role.to_json())
    assert again == role and again.to_response()["policies"] == ["a"]
    assert again.to_response()["secret_id_bound_cidrs"] is None and "period" not in \
        again.to_response()
    assert role.secret_key("h") == f"secret_id/{create_hmac('k', 'web')}/h"
    local = Role(name="web", hmac_key="k", local_secret_ids=True)
    assert local.secret_key("h").startswith("secret_id_local/")
    entry = SecretID(accessor="acc", num_uses=2, ttl=60, creation_time=1, expiration_time=5,
                     metadata={"a": "b"})
    assert SecretID.from_json(entry.to_json()) == entry
    assert entry.expired(5) and not entry.expired(4)
    assert not SecretID(accessor="x").expired(10**20)  # 0: never
    assert entry.to_response()["expiration_time"] == "1970-01-01T00:00:00.000000005Z"
    assert SecretID(accessor="x").to_response()["expiration_time"] == "0001-01-01T00:00:00Z"


def test_store_spend_and_role_index() -> None:
    async def run() -> None:
        store = AppRoleStore(InmemBackend())

        def create(stored: Role | None) -> tuple[Role, list[str]]:
            return Role(name="r", role_id="id-1", hmac_key="hk"), []

        role, _ = await store.save_role("r", create)
        assert (await store.role_by_id("id-1")) == role
        entry = await store.register(role, "s3cret", SecretID(accessor="", num_uses=3))
        assert entry.accessor
        h = create_hmac("hk", "s3cret")
        with pytest.raises(InternalError, match="already registered"):
            await store.register(role, "s3cret", SecretID(accessor=""))
        spent = await asyncio.gather(*(store.spend(role, h, entry.accessor, 1)
                                       for _ in range(6)))
        assert sorted(s.num_uses for s in spent if s is not None) == [0, 1, 2]
        assert spent.count(None) == 3
        assert await store.get_secret(role, h) is None
        assert await store.get_accessor(role, entry.accessor) is None

        def rename(stored: Role | None) -> tuple[Role, list[str]]:
            assert stored is not None
            stored.role_id = "id-2"
            return stored, []

        await store.save_role("r", rename)
        assert await store.role_by_id("id-1") is None
        assert (await store.role_by_id("id-2")) is not None

        def other(stored: Role | None) -> tuple[Role, list[str]]:
            return Role(name="o", role_id="id-2", hmac_key="x"), []

        with pytest.raises(InternalError, match="role_id already in use"):
            await store.save_role("o", other)
        assert await store.get_role("o") is None

    asyncio.run(run())


def test_tidy_removes_expired_and_orphans() -> None:
    async def run() -> None:
        store = AppRoleStore(InmemBackend())
        role, _ = await store.save_role(
            "r", lambda _: (Role(name="r", role_id="rid", hmac_key="hk"), []))
        old = await store.register(role, "old", SecretID(accessor="", expiration_time=1))
        keep = await store.register(role, "keep", SecretID(accessor=""))
        gone, _ = await store.save_role(
            "g", lambda _: (Role(name="g", role_id="gid", hmac_key="gk"), []))
        await store.register(gone, "orphan", SecretID(accessor=""))
        await store.storage.delete("role/g")  # its secret IDs are now orphans
        assert await store.tidy() == 2
        assert await store.list_accessors(role) == [keep.accessor]
        assert await store.get_accessor(role, old.accessor) is None
        assert await store.tidy() == 0

    asyncio.run(run())
