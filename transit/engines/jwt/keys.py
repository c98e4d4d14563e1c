"""Where a JWT mount's verification keys come from, and their in-memory cache.

* static `jwt_validation_pubkeys`: parsed once per config;
* `jwks_url` (+ `jwks_ca_pem`): the JWKS document, fetched with async IO (httpx, with a
  timeout), cached, and fetched again when a token names a `kid` the cache lacks or no
  cached key verifies it (go-oidc's remote key set; concurrent refreshes share one fetch);
* `oidc_discovery_url` (+ `oidc_discovery_ca_pem`): `<url>/.well-known/openid-configuration`
  gives `jwks_uri`, then as above.

The cache is per process; `KeyCache.clear()` runs when the mount's config changes (the
engine's `invalidate`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import httpx
import orjson

from transit.engines.jwt.config import JWTConfig
from transit.engines.jwt.jws import JWSError, PublicKey, parse_jwks, parse_pem_keys
from transit.errors import UserError

FETCH_TIMEOUT = 10.0  # seconds, per request
MAX_AGE = 3600.0  # a fetched key set is fetched again after this long
MAX_BODY = 1 << 20  # a JWKS or discovery document larger than this is refused


class FetchError(Exception):
    """A key set could not be fetched; the message is safe to show."""


def _ssl_context(ca_pem: str) -> ssl.SSLContext | bool:
    if not ca_pem:
        return True
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=ca_pem)  # raises ssl.SSLError / ValueError
    return ctx


async def _get(url: str, verify: ssl.SSLContext | bool) -> bytes:
    try:
        async with httpx.AsyncClient(verify=verify, timeout=FETCH_TIMEOUT,
                                     follow_redirects=False) as client:
            resp = await client.get(url, headers={"Accept": "application/json"})
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise FetchError(f'Get "{url}": {exc}') from None
    if resp.status_code != 200:
        raise FetchError(f"{resp.status_code} {resp.reason_phrase}: {resp.text[:200]}")
    if len(resp.content) > MAX_BODY:
        raise FetchError("response too large")
    return resp.content


async def discover_jwks_uri(url: str, verify: ssl.SSLContext | bool) -> str:
    """go-oidc NewProvider: the discovery document's `jwks_uri`; its issuer must be `url`."""
    raw = await _get(url.rstrip("/") + "/.well-known/openid-configuration", verify)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FetchError("oidc: failed to decode provider discovery object") from None
    if not isinstance(doc, dict):
        raise FetchError("oidc: failed to decode provider discovery object")
    issuer = doc.get("issuer")
    if issuer != url:
        raise FetchError("oidc: issuer did not match the issuer returned by provider, "
                         f'expected "{url}" got "{issuer}"')
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchError("oidc: provider discovery object has no jwks_uri")
    return jwks_uri


async def fetch_jwks(url: str, verify: ssl.SSLContext | bool) -> list[tuple[str, PublicKey]]:
    raw = await _get(url, verify)
    try:
        return parse_jwks(raw)
    except JWSError as exc:
        raise FetchError(str(exc)) from None


async def check_config(config: JWTConfig) -> None:
    """Vault's write-time checks of a remote key source (400 with Vault's texts)."""
    if config.oidc_discovery_url:
        try:
            verify = _ssl_context(config.oidc_discovery_ca_pem)
        except (ssl.SSLError, ValueError):
            raise UserError("error checking oidc discovery URL: could not parse CA PEM value "
                            "successfully") from None
        try:
            await discover_jwks_uri(config.oidc_discovery_url, verify)
        except FetchError as exc:
            raise UserError(f"error checking oidc discovery URL: {exc}") from None
    elif config.jwks_url:
        try:
            verify = _ssl_context(config.jwks_ca_pem)
        except (ssl.SSLError, ValueError):
            raise UserError("error checking jwks_ca_pem") from None
        try:
            await fetch_jwks(config.jwks_url, verify)
        except FetchError:
            raise UserError("error checking jwks URL") from None


@dataclass(slots=True)
class _Entry:
    keys: list[tuple[str, PublicKey]]
    fetched: float


class KeyCache:
    """The verification keys of one mount's config, fetched on demand."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None
        self._static: tuple[tuple[str, ...], list[PublicKey]] | None = None
        self._inflight: asyncio.Future[_Entry] | None = None
        self._generation = 0

    def clear(self) -> None:
        self._entry = None
        self._static = None
        self._generation += 1

    def static_keys(self, config: JWTConfig) -> list[PublicKey]:
        pems = tuple(config.jwt_validation_pubkeys)
        if self._static is None or self._static[0] != pems:
            keys: list[PublicKey] = []
            for pem in pems:
                keys.extend(parse_pem_keys(pem))
            self._static = (pems, keys)
        return self._static[1]

    async def remote_keys(self, config: JWTConfig, refresh: bool = False
                          ) -> list[tuple[str, PublicKey]]:
        """The JWKS keys (kid, key), from the cache unless `refresh` or stale."""
        entry = self._entry
        if entry is not None and not refresh and time.monotonic() - entry.fetched < MAX_AGE:
            return entry.keys
        if self._inflight is None:
            generation = self._generation
            future: asyncio.Future[_Entry] = asyncio.ensure_future(self._fetch(config))
            self._inflight = future
            try:
                entry = await future
            finally:
                self._inflight = None
            if generation == self._generation:
                self._entry = entry
            return entry.keys
        return (await asyncio.shield(self._inflight)).keys

    async def _fetch(self, config: JWTConfig) -> _Entry:
        try:
            if config.oidc_discovery_url:
                verify = _ssl_context(config.oidc_discovery_ca_pem)
                url = await discover_jwks_uri(config.oidc_discovery_url, verify)
            else:
                verify = _ssl_context(config.jwks_ca_pem)
                url = config.jwks_url
            keys = await fetch_jwks(url, verify)
        except (ssl.SSLError, ValueError) as exc:
            raise FetchError(str(exc)) from None
        return _Entry(keys=keys, fetched=time.monotonic())


def select(keys: list[tuple[str, PublicKey]], kid: str) -> list[PublicKey]:
    """The keys a token may be signed with: those with its `kid` (all when it has none)."""
    if not kid:
        return [k for _, k in keys]
    return [k for key_id, k in keys if key_id == kid or not key_id]


def has_kid(keys: list[tuple[str, PublicKey]], kid: str) -> bool:
    return not kid or any(key_id == kid for key_id, _ in keys)

