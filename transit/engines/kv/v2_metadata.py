"""KV v2 `metadata/` (read, list, write, patch, delete) and `config`."""

from __future__ import annotations

from typing import Any

from transit.engines.kv.common import now_ns, uint32
from transit.engines.kv.ports import KVv2Port
from transit.engines.kv.store import Config, KeyMetadata, Staged
from transit.errors import UserError
from transit.fields import Field, FieldData, FieldType
from transit.gocompat import multierror
from transit.logical import Request, Response

METADATA_FIELDS = {
    "path": Field(FieldType.STRING, ""),
    "max_versions": Field(FieldType.INT, 0),
    "cas_required": Field(FieldType.BOOL, False),
    "delete_version_after": Field(FieldType.DURATION, 0),
    "custom_metadata": Field(FieldType.MAP),
}
CONFIG_FIELDS = {
    "max_versions": Field(FieldType.INT, 0),
    "cas_required": Field(FieldType.BOOL, False),
    "delete_version_after": Field(FieldType.DURATION, 0),
}

MAX_CUSTOM_KEYS = 64
MAX_CUSTOM_KEY_LEN = 128
MAX_CUSTOM_VALUE_LEN = 512
_PREFIX = "custom_metadata validation failed"


def _to_str(key: str, value: Any) -> str:
    """mapstructure's weak decoding of one custom_metadata value into a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value == int(value) else repr(value)
    raise UserError(
        f'Field validation failed: error converting input for field "custom_metadata": '
        f"'[{key}]' expected type 'string', got unconvertible type '{type(value).__name__}'"
    )


def custom_metadata(raw: dict[str, Any], *, patch: bool = False) -> dict[str, str | None]:
    """Coerce (nulls kept only for a patch, where they delete a key)."""
    out: dict[str, str | None] = {}
    for key, value in raw.items():
        if value is None:
            out[key] = None if patch else ""
        else:
            out[key] = _to_str(key, value)
    return out


def validate_custom_metadata(cm: dict[str, str]) -> None:
    if len(cm) > MAX_CUSTOM_KEYS:
        raise UserError(multierror(
            [f"{_PREFIX}: payload must contain at most {MAX_CUSTOM_KEYS} keys, provided {len(cm)}"]
        ))
    problems: list[str] = []
    for key in sorted(cm):
        klen, vlen = len(key.encode()), len(cm[key].encode())
        if klen == 0 or klen > MAX_CUSTOM_KEY_LEN:
            problems.append(
                f'{_PREFIX}: length of key "{key}" is {klen} but must be 0 < len(key) <= '
                f"{MAX_CUSTOM_KEY_LEN}"
            )
        if vlen > MAX_CUSTOM_VALUE_LEN:
            problems.append(
                f'{_PREFIX}: length of value for key "{key}" is {vlen} but must be 0 < len(value) '
                f"<= {MAX_CUSTOM_VALUE_LEN}"
            )
    if problems:
        raise UserError(multierror(problems))


def _delete_version_after(d: FieldData) -> int:
    value = d.get("delete_version_after")
    if value < 0:
        raise UserError(
            'Field validation failed: error converting input for field "delete_version_after": '
            f"cannot provide negative value '{value}'"
        )
    return value


async def metadata_exists(b: KVv2Port, req: Request, d: FieldData) -> bool:
    return await b.store.metadata(b.path_of(req, d)) is not None


async def read_metadata(b: KVv2Port, req: Request, d: FieldData) -> Response | None:
    meta = await b.store.metadata(d.get("path"))
    return None if meta is None else Response(data=meta.describe())


async def list_metadata(b: KVv2Port, req: Request, d: FieldData) -> Response | None:
    prefix = d.get("path").lstrip("/")  # the mount root may arrive as "/"
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    keys = await b.store.list_metadata(prefix)
    return Response(data={"keys": keys}) if keys else None


def _apply(meta: KeyMetadata, d: FieldData, cm: dict[str, str] | None) -> None:
    if d.present("max_versions"):
        meta.max_versions = uint32(d.get("max_versions"))
    if d.present("cas_required"):
        meta.cas_required = d.get("cas_required")
    if d.present("delete_version_after"):
        meta.delete_version_after = _delete_version_after(d)
    if cm is not None:
        meta.custom_metadata = cm or None
    meta.updated = now_ns()


def _stage_pruned(st: Staged, meta: KeyMetadata, config: Config) -> None:
    dropped = meta.prune(config)
    st.put_metadata(meta)
    for v in dropped:
        st.delete_version(meta.key, v)


async def write_metadata(b: KVv2Port, req: Request, d: FieldData) -> None:
    path = d.get("path")
    if not path:
        raise UserError("missing path")
    cm: dict[str, str] | None = None
    if d.present("custom_metadata"):
        cm = {k: v or "" for k, v in custom_metadata(d.get("custom_metadata")).items()}
        validate_custom_metadata(cm)
    if d.present("delete_version_after"):
        _delete_version_after(d)
    config = await b.store.config()

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        meta = meta or KeyMetadata.new(path)
        _apply(meta, d, cm)
        _stage_pruned(st, meta, config)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


async def patch_metadata(b: KVv2Port, req: Request, d: FieldData) -> None:
    path = d.get("path")
    patch_cm = (
        custom_metadata(d.get("custom_metadata"), patch=True)
        if d.present("custom_metadata")
        else None
    )
    if d.present("delete_version_after"):
        _delete_version_after(d)
    config = await b.store.config()

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        cm: dict[str, str] | None = None
        if patch_cm is not None:
            cm = dict(meta.custom_metadata or {})
            for key, value in patch_cm.items():
                if value is None:
                    cm.pop(key, None)
                else:
                    cm[key] = value
            validate_custom_metadata(cm)
        _apply(meta, d, cm)
        _stage_pruned(st, meta, config)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


async def delete_metadata(b: KVv2Port, req: Request, d: FieldData) -> None:
    path = d.get("path")

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        st.delete_metadata(path)
        for number in meta.versions:
            st.delete_version(path, number)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


async def read_config(b: KVv2Port, req: Request, d: FieldData) -> Response:
    return Response(data=(await b.store.config()).describe())


async def write_config(b: KVv2Port, req: Request, d: FieldData) -> None:
    async with b.locks.lock("\x00config"):
        await b.store.modify_config(lambda config: _apply_config(config, d))
    return None


def _apply_config(config: Config, d: FieldData) -> None:
    if d.present("max_versions"):
        config.max_versions = uint32(d.get("max_versions"))
    if d.present("cas_required"):
        config.cas_required = d.get("cas_required")
    if d.present("delete_version_after"):
        config.delete_version_after = max(d.get("delete_version_after"), 0)
