"""BYOK: `wrapping_key`, `keys/:name/import`, `keys/:name/import_version` and
`byok-export/:destination/:source[/:version]` (spec §4.20).

The mount's wrapping key is an RSA-4096 policy named `import/wrapping-key`, created the first
time anyone needs it (a read of `wrapping_key` or an import). Most import errors are plain Go
errors in Vault, hence 500s (`InternalError`); the exceptions are noted inline.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from transit.crypto import wrapping
from transit.crypto.encoding import Base64Error, b64decode, b64encode
from transit.crypto.keytypes import KeyType
from transit.crypto.policy import Policy
from transit.engines.transit.policies import KEEP
from transit.errors import InternalError, TransitError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

if TYPE_CHECKING:
    from transit.engines.transit.ports import TransitPort

WRAPPING_KEY_NAME = "import/wrapping-key"
HASH_FUNCTIONS = ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512")

IMPORT_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "The name of the key"),
    "type": Field(FieldType.STRING, "aes256-gcm96", "The type of the imported key"),
    "hash_function": Field(FieldType.STRING, "SHA256", "OAEP hash of the ephemeral key wrap"),
    "ciphertext": Field(FieldType.STRING, "", "b64(RSA-OAEP(ephemeral AES key) || KWP(key))"),
    "public_key": Field(FieldType.STRING, "", "PEM public key (asymmetric types only)"),
    "allow_rotation": Field(FieldType.BOOL, False, "Allow rotation within the server"),
    "derived": Field(FieldType.BOOL, False, "Enable key derivation"),
    "exportable": Field(FieldType.BOOL, False, "Allow export"),
    "allow_plaintext_backup": Field(FieldType.BOOL, False, "Allow plaintext backup"),
    "context": Field(FieldType.STRING, "", "Base64 context (read only)"),
    "auto_rotate_period": Field(FieldType.DURATION, 0, "Auto-rotation period"),
}

IMPORT_VERSION_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "", "The name of the key"),
    "ciphertext": Field(FieldType.STRING, "", "b64(RSA-OAEP(ephemeral AES key) || KWP(key))"),
    "public_key": Field(FieldType.STRING, "", "PEM public key (asymmetric types only)"),
    "hash_function": Field(FieldType.STRING, "SHA256", "OAEP hash of the ephemeral key wrap"),
    "version": Field(FieldType.INT, 0, "Version whose private half to fill in"),
}

BYOK_EXPORT_FIELDS: dict[str, Field] = {
    "destination": Field(FieldType.STRING, "", "RSA key of this mount to wrap for"),
    "source": Field(FieldType.STRING, "", "Key to export"),
    "version": Field(FieldType.STRING, "", "N, vN or latest (default: all versions)"),
    "hash": Field(FieldType.STRING, "SHA256", "OAEP hash for the ephemeral key wrap"),
}


# --- the wrapping key ------------------------------------------------------------------------


async def get_wrapping_key(b: TransitPort) -> Policy:
    """The mount's RSA-4096 wrapping key, generated (off the event loop) on first use."""
    p = await b.policies.get(WRAPPING_KEY_NAME)
    if p is not None:
        return p

    async def create(current: Policy | None) -> tuple[Any, None]:
        if current is not None:
            return KEEP, None  # made by another worker or node meanwhile: use theirs
        return await asyncio.to_thread(Policy.create, WRAPPING_KEY_NAME, KeyType.RSA4096), None

    p, _ = await b.policies.modify(WRAPPING_KEY_NAME, create, durable=True)
    assert p is not None
    return p


def _wrapping_private_key(p: Policy) -> rsa.RSAPrivateKey:
    return p.keys[p.latest_version].rsa_private()


async def read_wrapping_key(b: TransitPort, req: Request, d: FieldData) -> Response:
    p = await get_wrapping_key(b)
    # pem.EncodeToMemory: PKIX PEM with its trailing newline (OpenBao 2.7.2 agrees).
    return Response(data={"public_key": p.public_key_pem(p.latest_version)})


# --- import ----------------------------------------------------------------------------------


def _hash_function(raw: str) -> str:
    name = raw.upper()
    if name not in HASH_FUNCTIONS:
        raise UserError(f"unknown hash function: {raw}")  # the one 400 of extractKeyFromFields
    return name


async def _extract_key(
    b: TransitPort, d: FieldData, key_type: KeyType, private: bool
) -> tuple[bytes | None, str | None]:
    """Vault's extractKeyFromFields: (unwrapped key bytes, None) or (None, public PEM)."""
    if not private:
        if not key_type.supports_import_public_key:
            raise InternalError("provided type does not support public_key import")
        return None, d.get("public_key")
    hash_fn = _hash_function(d.get("hash_function"))
    try:
        blob = b64decode(d.get("ciphertext"))
    except Base64Error as exc:
        raise InternalError(str(exc)) from None
    wrapping_key = await get_wrapping_key(b)
    try:
        key = wrapping.unwrap(blob, _wrapping_private_key(wrapping_key), hash_fn)
    except TransitError:
        raise
    except Exception as exc:  # OpenSSL/KWP failures: Vault's plain (500) errors
        raise InternalError(str(exc) or type(exc).__name__) from exc
    return key, None


def _parse_import_type(raw: str) -> KeyType:
    try:
        return KeyType(raw.lower())
    except ValueError:
        raise UserError(f"unknown key type: {raw}") from None


async def import_key(b: TransitPort, req: Request, d: FieldData) -> None:
    name = d.get("name")
    allow_rotation = d.get("allow_rotation")
    auto_rotate_period = d.get("auto_rotate_period")
    if d.present("convergent_encryption"):
        raise InternalError("import cannot be used on keys with convergent encryption enabled")
    if auto_rotate_period > 0 and not allow_rotation:
        raise InternalError("allow_rotation must be set to true if auto-rotation is enabled")
    private = d.present("ciphertext")
    key_type = _parse_import_type(d.get("type"))

    exists = InternalError(
        "the import path cannot be used with an existing key; use import-version to "
        "rotate an existing imported key"
    )
    if await b.policies.get(name) is not None:
        raise exists
    key, public_pem = await _extract_key(b, d, key_type, private)
    p = Policy.import_key(
        name, key_type, key=key, public_key_pem=public_pem,
        derived=d.get("derived"), exportable=d.get("exportable"),
        allow_plaintext_backup=d.get("allow_plaintext_backup"),
        allow_rotation=allow_rotation, auto_rotate_period=auto_rotate_period,
    )

    def put(current: Policy | None) -> tuple[Policy, None]:
        if current is not None:  # created since the check above
            raise exists
        return p, None

    await b.policies.modify(name, put, durable=True)
    return None


async def import_version(b: TransitPort, req: Request, d: FieldData) -> None:
    name = d.get("name")
    private = d.present("ciphertext")

    def check(current: Policy | None) -> Policy:
        if current is None:
            raise InternalError(
                f"no key found with name {name}; to import a new key, use the import/ endpoint"
            )
        if not current.imported:
            raise InternalError("the import_version endpoint can only be used with an imported key")
        if current.convergent_encryption:
            raise InternalError(
                "import_version cannot be used on keys with convergent encryption enabled"
            )
        return current

    # The key is unwrapped once, for the type the key has now; `apply` re-checks on what is
    # stored when it commits (a key deleted and re-created meanwhile may have another type).
    key_type = check(await b.policies.get(name)).type
    key, public_pem = await _extract_key(b, d, key_type, private)

    def apply(current: Policy | None) -> tuple[Policy, None]:
        current = check(current)
        if current.type is not key_type:
            raise InternalError(f"key {name} changed type during the import; retry")
        current.import_version(key=key, public_key_pem=public_pem,
                               version=d.get("version") if d.present("version") else 0)
        return current, None

    await b.policies.modify(name, apply, durable=True)
    return None


# --- byok-export -----------------------------------------------------------------------------


def _destination_public_key(dst: Policy) -> rsa.RSAPublicKey:
    """keysutil Policy.WrapKey's checks on the destination (plain errors, so 500s)."""
    if not dst.type.supports_signing:
        raise InternalError(
            f"key wrapping (requring message signing) is not supported for key type {dst.type}"
        )
    if not dst.type.is_rsa:
        raise InternalError("unsupported key type in use; must be a rsa key")
    pub = serialization.load_pem_public_key(dst.public_key_pem(dst.latest_version).encode())
    assert isinstance(pub, rsa.RSAPublicKey)
    return pub


async def byok_export(b: TransitPort, req: Request, d: FieldData) -> Response:
    dst = await b.policies.get(d.get("destination"))
    if dst is None:
        raise InternalError("no such destination key to export to")
    src = await b.policies.get(d.get("source"))
    if src is None:
        raise InternalError("no such source key for export")
    if not src.exportable:
        raise UserError("key is not exportable")

    keys: dict[str, str] = {}
    for ver in src.export_versions(d.get("version")):
        material = wrapping.key_material_for_wrap(src, ver)
        hash_name = d.get("hash").upper()
        if hash_name not in HASH_FUNCTIONS:
            raise InternalError(f"unknown hash function: {d.get('hash')}")
        wrapped = wrapping.wrap(material, _destination_public_key(dst), hash_name)
        keys[str(ver)] = wrapped if isinstance(wrapped, str) else b64encode(wrapped)
    return Response(data={"name": src.name, "type": str(src.type), "keys": keys})
