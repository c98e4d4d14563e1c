"""KV v2 `data/`, `delete/`, `undelete/`, `destroy/` and `subkeys/` (Vault's versioned K/V)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transit.engines.kv.common import now_ns, parse_int_list
from transit.engines.kv.ports import KVv2Port
from transit.engines.kv.store import Config, KeyMetadata, Staged, VersionMeta
from transit.errors import NotFound, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import Request, Response

DATA_FIELDS = {
    "path": Field(FieldType.STRING, ""),
    "version": Field(FieldType.INT, 0),
    "data": Field(FieldType.MAP),
    "options": Field(FieldType.MAP),
}
VERSIONS_FIELDS = {"path": Field(FieldType.STRING, ""), "versions": Field(FieldType.ANY)}
SUBKEYS_FIELDS = {
    "path": Field(FieldType.STRING, ""),
    "version": Field(FieldType.INT, 0),
    "depth": Field(FieldType.INT, 0),
}

CAS_REQUIRED = "check-and-set parameter required for this call"
CAS_MISMATCH = "check-and-set parameter did not match the current version"


def parse_cas(value: Any) -> int:
    """mapstructure.WeakDecode of options.cas into an int."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return 0
        try:
            return int(s, 0)
        except ValueError:
            pass
    raise UserError("error parsing check-and-set parameter")


def check_cas(d: FieldData, config: Config, meta: KeyMetadata | None) -> None:
    options = d.get("options") or {}
    current = meta.current_version if meta is not None else 0
    if "cas" not in options:
        if config.cas_required or (meta is not None and meta.cas_required):
            raise UserError(CAS_REQUIRED)
        return
    if parse_cas(options["cas"]) != current:
        raise UserError(CAS_MISMATCH)


def require_data(d: FieldData) -> Any:
    if "data" not in d.raw:
        raise UserError("no data provided")
    return d.get("data")


def commit_version(
    st: Staged, meta: KeyMetadata, config: Config, data: Any, new: bool = False
) -> int:
    """Stage `data` as the next version of `meta.key`, prune, stage the metadata."""
    t = now_ns()
    if new:
        meta.created = t  # a brand-new key is created with its first version, like Vault
    version = meta.current_version + 1
    delete_after = meta.delete_after(config)
    st.put_version(meta.key, version, data)
    meta.versions[version] = VersionMeta(
        created=t, deletion=t + delete_after * 1_000_000_000 if delete_after else 0
    )
    meta.current_version = version
    meta.updated = t
    dropped = meta.prune(config)
    st.put_metadata(meta)
    for v in dropped:
        st.delete_version(meta.key, v)
    return version


def _check_path(path: str) -> None:
    if not path:
        raise UserError("missing path")


async def data_exists(b: KVv2Port, req: Request, d: FieldData) -> bool:
    return await b.store.metadata(b.path_of(req, d)) is not None


async def _read_version(
    b: KVv2Port, path: str, version: int, key: str, render: Callable[[Any], Any]
) -> Response | None:
    """`{key: render(data), "metadata": ...}` of a version (0 = current) for data/ and
    subkeys/: None (404) when there is none, a 404 with `key` null when deleted/destroyed."""
    meta = await b.store.metadata(path)
    if meta is None:
        return None
    number = version if version > 0 else meta.current_version
    vm = meta.versions.get(number)
    if vm is None:
        return None
    body = meta.version_data(number)
    if vm.destroyed or vm.deleted():
        return Response(data={key: None, "metadata": body}, status=404)
    found, data = await b.store.version(path, number)
    if not found:
        return None
    return Response(data={key: render(data), "metadata": body})


async def read_data(b: KVv2Port, req: Request, d: FieldData) -> Response | None:
    return await _read_version(b, d.get("path"), d.get("version"), "data", lambda data: data)


async def write_data(b: KVv2Port, req: Request, d: FieldData) -> Response:
    path = d.get("path")
    _check_path(path)
    data = require_data(d)
    config = await b.store.config()

    async def body(st: Staged, meta: KeyMetadata | None) -> dict[str, Any]:
        check_cas(d, config, meta)
        new = meta is None
        meta = meta or KeyMetadata.new(path)
        return meta.version_data(commit_version(st, meta, config, data, new))

    async with b.locks.lock(path):
        return Response(data=await b.store.modify(path, body))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def patch_data(b: KVv2Port, req: Request, d: FieldData) -> Response | None:
    path = d.get("path")
    _check_path(path)
    patch = require_data(d)
    config = await b.store.config()

    async def body(st: Staged, meta: KeyMetadata | None) -> Response:
        if meta is None:
            raise NotFound()
        check_cas(d, config, meta)
        vm = meta.versions.get(meta.current_version)
        if vm is None:
            raise NotFound()
        if vm.destroyed or vm.deleted():
            return Response(data=meta.version_data(meta.current_version), status=404)
        found, current = await b.store.version(path, meta.current_version)
        if not found:
            raise NotFound()
        version = commit_version(st, meta, config, merge_patch(current, patch))
        return Response(data=meta.version_data(version))

    async with b.locks.lock(path):
        return await b.store.modify(path, body)


async def delete_latest(b: KVv2Port, req: Request, d: FieldData) -> None:
    path = d.get("path")

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        vm = meta.versions.get(meta.current_version)
        if vm is None or vm.destroyed or vm.deleted():
            return
        vm.deletion = now_ns()
        st.put_metadata(meta)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


def _versions(d: FieldData) -> list[int]:
    versions = parse_int_list(d.raw.get("versions"), "versions")
    if not versions:
        raise UserError("No version number provided")
    return versions


async def delete_versions(b: KVv2Port, req: Request, d: FieldData) -> None:
    versions = _versions(d)
    path = d.get("path")

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        t = now_ns()
        for number in versions:
            vm = meta.versions.get(number)
            if vm is None or vm.destroyed or vm.deleted(t):
                continue
            vm.deletion = t
        st.put_metadata(meta)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


async def undelete_versions(b: KVv2Port, req: Request, d: FieldData) -> None:
    versions = _versions(d)
    path = d.get("path")

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        for number in versions:
            vm = meta.versions.get(number)
            if vm is not None and not vm.destroyed:
                vm.deletion = 0
        st.put_metadata(meta)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


async def destroy_versions(b: KVv2Port, req: Request, d: FieldData) -> None:
    versions = _versions(d)
    path = d.get("path")

    async def body(st: Staged, meta: KeyMetadata | None) -> None:
        if meta is None:
            return
        gone: list[int] = []
        for number in versions:
            vm = meta.versions.get(number)
            if vm is None or vm.destroyed:
                continue
            vm.destroyed = True
            gone.append(number)
        st.put_metadata(meta)
        for number in gone:
            st.delete_version(path, number)

    async with b.locks.lock(path):
        await b.store.modify(path, body)
    return None


def _subkeys(value: Any, depth: int, level: int = 1) -> Any:
    if not isinstance(value, dict):
        return None
    if depth and level >= depth:
        return {k: None for k in value}
    return {k: _subkeys(v, depth, level + 1) for k, v in value.items()}


async def read_subkeys(b: KVv2Port, req: Request, d: FieldData) -> Response | None:
    path = d.get("path")
    version = d.get("version")
    depth = d.get("depth")
    depth = 1 if depth < 0 else depth
    return await _read_version(
        b, path, version, "subkeys", lambda data: _subkeys(data or {}, depth)
    )
