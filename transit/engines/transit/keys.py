"""`keys`, `keys/:name`, `keys/:name/{config,rotate,trim}` (spec §4.1-4.7).

Checks run in the order of Vault's path_keys.go / path_config.go / path_rotate.go /
path_trim.go, because clients see whichever error comes first. Every mutation goes through
`PolicyStore.modify`: the change runs on the policy freshly read from storage and is committed
only if nobody changed the key in between; an error anywhere leaves storage and cache as they
were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transit.crypto.encoding import b64decode
from transit.crypto.keytypes import HMAC_MAX_KEY_SIZE, HMAC_MIN_KEY_SIZE, KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.policies import DELETE, KEEP
from transit.errors import CryptoError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

HOUR = 3600

LIST_FIELDS: dict[str, Field] = {}

KEY_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "type": Field(FieldType.STRING, "aes256-gcm96", "The type of key to create"),
    "derived": Field(FieldType.BOOL, False, "Enables key derivation"),
    "convergent_encryption": Field(FieldType.BOOL, False, "Deterministic encryption (derived)"),
    "exportable": Field(FieldType.BOOL, False, "Allows the key to be exported"),
    "allow_plaintext_backup": Field(FieldType.BOOL, False, "Allows plaintext backups"),
    "auto_rotate_period": Field(FieldType.DURATION, 0, "0 disables; else at least 1h"),
    "key_size": Field(FieldType.INT, 0, "HMAC key size in bytes (32..512)"),
    "context": Field(FieldType.STRING, "", "Base64 context, to show derived public keys"),
    "managed_key_name": Field(FieldType.STRING, "", "Enterprise only"),
    "managed_key_id": Field(FieldType.STRING, "", "Enterprise only"),
}

CONFIG_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "min_decryption_version": Field(FieldType.INT, 0, "Minimum version allowed to decrypt"),
    "min_encryption_version": Field(FieldType.INT, 0, "Minimum version allowed to encrypt"),
    "deletion_allowed": Field(FieldType.BOOL, False, "Whether the key may be deleted"),
    "exportable": Field(FieldType.BOOL, False, "One-way: enables export"),
    "allow_plaintext_backup": Field(FieldType.BOOL, False, "One-way: enables plaintext backup"),
    "auto_rotate_period": Field(FieldType.DURATION, 0, "0 disables; else at least 1h"),
}

ROTATE_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "managed_key_name": Field(FieldType.STRING, "", "Enterprise only"),
    "managed_key_id": Field(FieldType.STRING, "", "Enterprise only"),
}

TRIM_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "Name of the key"),
    "min_available_version": Field(FieldType.INT, 0, "Versions below this are deleted"),
}

# Config parameters handed to Policy.update_config when present (in Vault's order).
_CONFIG_PARAMS = (
    "min_decryption_version",
    "min_encryption_version",
    "deletion_allowed",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
)


async def _mutate(
    b: TransitPort, name: str, missing: Exception, change: Callable[[Policy], Any], *,
    durable: bool = False,
) -> tuple[Policy, Any]:
    """Change one stored key (`PolicyStore.modify`); raises `missing` if there is no such
    key. Returns the saved policy and whatever `change` returned."""

    async def apply(current: Policy | None) -> tuple[Policy, Any]:
        if current is None:
            raise missing
        if current.type.is_rsa:  # RSA key generation takes long: keep it off the loop
            return current, await asyncio.to_thread(change, current)
        return current, change(current)

    p, result = await b.policies.modify(name, apply, durable=durable)
    assert p is not None
    return p, result


def _key_response(p: Policy, warnings: list[str] | None = None) -> Response:
    resp = Response(data=p.key_info())
    for w in warnings or ():
        resp.add_warning(w)
    return resp


async def list_keys(b: TransitPort, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": await b.policies.list()})


async def read_key(b: TransitPort, req: Request, d: FieldData) -> Response | None:
    p = await b.policies.get_for(d.get("name"), forward=req.perf_standby)
    if p is None:
        return None
    context = None
    raw = d.get("context")
    if raw:
        try:
            context = b64decode(raw)
        except CryptoError:
            raise UserError("failed to base64-decode context") from None
    return Response(data=p.key_info(context))


async def create_key(b: TransitPort, req: Request, d: FieldData) -> Response:
    name = d.get("name")
    derived = d.get("derived")
    convergent = d.get("convergent_encryption")
    period = d.get("auto_rotate_period")
    key_size = d.get("key_size")

    if period != 0 and period < HOUR:
        raise UserError("auto rotate period must be 0 to disable or at least an hour")
    if convergent and not derived:
        raise UserError("convergent encryption requires derivation to be enabled")
    key_type = KeyType.parse(d.get("type"))
    if key_size != 0:
        if key_type is not KeyType.HMAC:
            raise UserError(f"key_size is not valid for algorithm {key_type}")
        if not HMAC_MIN_KEY_SIZE <= key_size <= HMAC_MAX_KEY_SIZE:
            raise UserError(f"invalid key_size {key_size}")

    existing = await b.policies.get(name)
    if existing is None:

        async def create(current: Policy | None) -> tuple[Any, bool]:
            if current is not None:
                return KEEP, True
            # InternalError (500) for the type/option combinations creation refuses; the
            # key generation (RSA: tens of ms) runs off the event loop.
            return await asyncio.to_thread(
                Policy.create,
                name,
                key_type,
                derived=derived,
                convergent=convergent,
                exportable=d.get("exportable"),
                allow_plaintext_backup=d.get("allow_plaintext_backup"),
                auto_rotate_period=period,
                key_size=key_size,
            ), False

        existing, existed = await b.policies.modify(name, create, durable=True)
        assert existing is not None  # `create` stores a new key or keeps the one there
        if not existed:
            return _key_response(existing)
    # Parameters are not compared and nothing changes (Vault's upsert of an existing key).
    return _key_response(existing, [f"key {name} already existed"])


async def delete_key(b: TransitPort, req: Request, d: FieldData) -> None:
    name = d.get("name")

    def delete(p: Policy | None) -> tuple[Any, None]:
        if p is None:
            raise UserError(f"error deleting policy {name}: could not delete key; not found")
        if not p.deletion_allowed:
            raise UserError(f"error deleting policy {name}: deletion is not allowed for this key")
        return DELETE, None

    await b.policies.modify(name, delete)
    return None


async def update_config(b: TransitPort, req: Request, d: FieldData) -> Response:
    name = d.get("name")
    params = {k: d.get(k) for k in _CONFIG_PARAMS if d.present(k)}
    p, warnings = await _mutate(
        b,
        name,
        UserError(f"no existing key named {name} could be found"),
        lambda p: p.update_config(**params),
    )
    return _key_response(p, warnings)


async def rotate_key(b: TransitPort, req: Request, d: FieldData) -> Response:
    # durable: acknowledged (and used for encryption) only once the replicas have it
    p, _ = await _mutate(b, d.get("name"), UserError("key not found"), lambda p: p.rotate(),
                         durable=True)
    return _key_response(p)


async def trim_key(b: TransitPort, req: Request, d: FieldData) -> Response:
    name = d.get("name")

    def change(p: Policy) -> None:
        if not d.present("min_available_version"):
            raise UserError("missing min_available_version")
        p.trim(d.get("min_available_version"))

    p, _ = await _mutate(b, name, UserError("invalid key name"), change)
    return _key_response(p)
