"""The TLS certificate auth method: its one route table and handlers (Vault's
`builtin/credential/cert`; spec auth-api §4).

Roles live at `cert/<lowercase name>` of the mount's storage (the trusted PEM, constraints
and token fields), the mount's settings at `config`. `login` is the only unauthenticated
path; the credential is the TLS client certificate of the connection (`Request.client_certs`,
from the listener, transit/api/tls.py and transit/api/protocol.py), never the body.
CRLs (`crls/:name`, transit/engines/cert/crls.py) revoke serials; OCSP is not implemented
(the OCSP fields are stored and shown, not used).
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import orjson
from cryptography import x509

from transit.engines.authmethod import Login, login_response
from transit.engines.cert.crls import CRL_PREFIX, crl_key, parse_crl, revoked_serials, to_json
from transit.engines.cert.roles import (
    BOOL_FIELDS,
    CONFIG_KEY,
    LIST_FIELDS,
    ROLE_PREFIX,
    CertConfig,
    CertRole,
    check_role_certificate,
    parse_pem,
    role_key,
)
from transit.engines.cert.verify import (
    NO_CHAIN,
    Candidate,
    common_name,
    key_id_hex,
    match_role,
    metadata_extensions,
)
from transit.engines.framework import Engine, ExistenceCheck, Handler, Route, name
from transit.errors import InternalError, UserError
from transit.fields import Field, FieldData, FieldType
from transit.logical import CREATE, DELETE, LIST, READ, UPDATE, Request, Response
from transit.storage.base import Write
from transit.storage.update import update
from transit.tokens.ttl import RenewDeclined
from transit.tokenutil import TokenParams, comma_list, parse_token_fields, token_fields

LEGACY = ("policies", "ttl", "max_ttl", "period", "bound_cidrs", "num_uses")

ROLE_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "certificate": Field(FieldType.STRING, ""),
    "display_name": Field(FieldType.STRING, ""),
    "ocsp_ca_certificates": Field(FieldType.STRING, ""),
    **{f: Field(FieldType.ANY) for f in LIST_FIELDS},
    **{f: Field(FieldType.BOOL, False) for f in BOOL_FIELDS},
    "lease": Field(FieldType.INT, 0),  # deprecated, accepted and ignored
    **token_fields(LEGACY),
}
CONFIG_FIELDS: dict[str, Field] = {
    "disable_binding": Field(FieldType.BOOL, False),
    "enable_identity_alias_metadata": Field(FieldType.BOOL, False),
    "ocsp_cache_size": Field(FieldType.INT, 100),
}
LOGIN_FIELDS: dict[str, Field] = {"name": Field(FieldType.STRING, "")}
CRL_FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, ""),
    "crl": Field(FieldType.ANY),
    "url": Field(FieldType.ANY),
}


class CertBackend(Engine):
    mount_type = "cert"
    unauthenticated = ("login",)

    def __init__(self, storage: Any, options: dict[str, Any] | None = None) -> None:
        self.storage = storage
        b = self

        def h(fn: Callable[[CertBackend, Request, FieldData], Awaitable[Any]]) -> Handler:
            return partial(fn, b)

        def e(fn: Callable[[CertBackend, Request, FieldData], Awaitable[bool]]
              ) -> ExistenceCheck:
            return partial(fn, b)

        super().__init__([
            Route(r"certs/?", {LIST: h(list_roles)}, {}),
            Route(
                rf"certs/{name('name')}",
                {READ: h(read_role), CREATE: h(write_role), UPDATE: h(write_role),
                 DELETE: h(delete_role)},
                ROLE_FIELDS, existence_check=e(role_exists),
            ),
            Route(r"config", {READ: h(read_config), UPDATE: h(write_config)}, CONFIG_FIELDS),
            Route(r"crls/?", {LIST: h(list_crls)}, {}),
            Route(rf"crls/{name('name')}",
                  {READ: h(read_crl), UPDATE: h(write_crl), DELETE: h(delete_crl)}, CRL_FIELDS),
            Route(r"login", {UPDATE: h(login)}, LOGIN_FIELDS),
        ])

    async def get_role(self, role_name: str) -> CertRole | None:
        raw = await self.storage.get(role_key(role_name))
        return CertRole.from_json(raw) if raw is not None else None

    async def renew_login(self, token: Any) -> TokenParams | None:
        """Vault's pathLoginRenew without the certificate binding (the renewal request's
        connection is not at hand here): the role's current TTLs; refused when its policies
        changed; a deleted role's token is not renewed."""
        role = await self.get_role(str((token.meta or {}).get("cert_name", "")))
        if role is None:
            raise RenewDeclined()
        now = {p for p in role.token.policies if p != "default"}
        then = {p for p in token.policies if p != "default"}
        if now != then:
            raise InternalError("policies have changed, not renewing")
        return role.token


def cert_factory(storage: Any, options: dict[str, Any]) -> Engine:
    return CertBackend(storage, options)


def _name(d: FieldData) -> str:
    return str(d.get("name")).lower()


async def role_exists(b: CertBackend, req: Request, d: FieldData) -> bool:
    return await b.get_role(_name(d)) is not None


async def list_roles(b: CertBackend, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": sorted(await b.storage.list(ROLE_PREFIX))})


async def read_role(b: CertBackend, req: Request, d: FieldData) -> Response | None:
    role = await b.get_role(_name(d))
    return Response(data=role.to_response()) if role is not None else None


async def delete_role(b: CertBackend, req: Request, d: FieldData) -> None:
    await b.storage.delete(role_key(_name(d)))


def _apply(d: FieldData, stored: CertRole | None, role_name: str) -> tuple[CertRole, list[str]]:
    """The role after this write (fields absent keep the stored values); UserError with
    Vault's texts. Pure: run again on the entry as stored at write time."""
    role = stored or CertRole(name=role_name)
    raw = d.raw
    if "certificate" in raw:  # JSON null: present and empty, refused below (as Vault)
        role.certificate = str(d.get("certificate"))
    if "display_name" in raw:
        role.display_name = str(d.get("display_name"))
    if "ocsp_ca_certificates" in raw:
        role.ocsp_ca_certificates = str(d.get("ocsp_ca_certificates"))
    for field in LIST_FIELDS:
        if field in raw:
            role.lists[field] = [v.strip() for v in comma_list(raw[field], field)
                                 if v.strip()]
    for field in BOOL_FIELDS:
        if field in raw:
            role.flags[field] = bool(d.get(field))
    role.token, warnings = parse_token_fields(d, role.token)
    check_role_certificate(role.certificate)
    if not role.display_name:
        role.display_name = role_name
    return role, warnings


async def write_role(b: CertBackend, req: Request, d: FieldData) -> Response | None:
    role_name = _name(d)
    current = await b.get_role(role_name)
    _, warnings = _apply(d, current, role_name)  # validation before any write
    key = role_key(role_name)

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        raw = values[key]
        role, _ = _apply(d, CertRole.from_json(raw) if raw is not None else None, role_name)
        return [Write(key, role.to_json())], None

    await update(b.storage, [key], change)
    return Response(warnings=warnings) if warnings else None


async def read_config(b: CertBackend, req: Request, d: FieldData) -> Response:
    config = CertConfig.from_json(await b.storage.get(CONFIG_KEY))
    return Response(data=config.to_response())


async def write_config(b: CertBackend, req: Request, d: FieldData) -> None:
    size, has_size = d.get_ok("ocsp_cache_size")
    if has_size and "ocsp_cache_size" in d.raw and not 2 <= int(size) <= 100000:
        raise UserError("invalid cache size, must be >= 2 and <= 100000")

    def change(values: dict[str, bytes | None]) -> tuple[list[Write], None]:
        config = CertConfig.from_json(values[CONFIG_KEY])
        if "disable_binding" in d.raw:
            config.disable_binding = bool(d.get("disable_binding"))
        if "enable_identity_alias_metadata" in d.raw:
            config.enable_identity_alias_metadata = bool(
                d.get("enable_identity_alias_metadata"))
        if "ocsp_cache_size" in d.raw:
            config.ocsp_cache_size = int(size)
        return [Write(CONFIG_KEY, config.to_json())], None

    await update(b.storage, [CONFIG_KEY], change)


async def list_crls(b: CertBackend, req: Request, d: FieldData) -> Response:
    return Response(data={"keys": sorted(await b.storage.list(CRL_PREFIX))})


async def read_crl(b: CertBackend, req: Request, d: FieldData) -> Response:
    raw = await b.storage.get(crl_key(_name(d)))
    if raw is None:
        raise UserError(f"no such CRL {_name(d)}")
    return Response(data=orjson.loads(raw))


async def write_crl(b: CertBackend, req: Request, d: FieldData) -> None:
    if "crl" in d.raw:
        serials = parse_crl(d.raw["crl"])
    elif "url" in d.raw:
        raise UserError("CRL distribution URLs are not supported; send the CRL as 'crl'")
    else:
        raise UserError("one of 'crl' or 'url' must be provided")
    await b.storage.put(crl_key(_name(d)), to_json(serials))


async def delete_crl(b: CertBackend, req: Request, d: FieldData) -> None:
    key = crl_key(_name(d))
    if await b.storage.get(key) is None:
        raise UserError(f"no such CRL {_name(d)}")
    await b.storage.delete(key)


async def _revoked(b: CertBackend) -> set[int]:
    names = await b.storage.list(CRL_PREFIX)
    raws = [await b.storage.get(CRL_PREFIX + n) for n in names]
    return revoked_serials([r for r in raws if r is not None])


async def _candidates(b: CertBackend, role_name: str) -> list[Candidate]:
    if role_name:
        role = await b.get_role(role_name)
        roles = [role] if role is not None else []
    else:
        roles = [r for r in [await b.get_role(n)
                             for n in sorted(await b.storage.list(ROLE_PREFIX))]
                 if r is not None]
    return [Candidate(role, role.parsed()) for role in roles]


async def login(b: CertBackend, req: Request, d: FieldData) -> Response:
    if req.client_certs is None:
        raise UserError("tls connection required")
    if not req.client_certs:
        raise UserError("client certificate must be supplied")
    leaves = parse_pem(req.client_certs[0])
    if not leaves:
        raise UserError(NO_CHAIN)
    leaf = leaves[0]
    candidates = await _candidates(b, _name(d))
    role = match_role(leaf, candidates, datetime.datetime.now(datetime.UTC), await _revoked(b))
    config = CertConfig.from_json(await b.storage.get(CONFIG_KEY))
    metadata = {
        "cert_name": role.name,
        "common_name": common_name(leaf),
        "serial_number": str(leaf.serial_number),
        "subject_key_id": key_id_hex(_key_id(leaf, x509.SubjectKeyIdentifier)),
        "authority_key_id": key_id_hex(_key_id(leaf, x509.AuthorityKeyIdentifier)),
        **metadata_extensions(leaf, role.values("allowed_metadata_extensions")),
    }
    return login_response(Login(
        token=role.token, display_name=role.display_name, metadata=metadata,
        alias_name=common_name(leaf),
        alias_metadata=dict(metadata) if config.enable_identity_alias_metadata else {},
    ))


def _key_id(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return None
