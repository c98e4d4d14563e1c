"""Shared by the audit unit tests: a request with a token, a decision, the broker over
in-memory storage, and the HMAC a logged value should carry."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from transit.audit import AuditBroker
from transit.logical import Request
from transit.storage import StorageView
from transit.storage.inmem import InmemBackend

TOKEN = "hvs.SECRETTOKENabcdefghijklmn"
ACCESSOR = "ACCESSORxyz123"
PLAINTEXT = "c2VjcmV0IHBsYWludGV4dA=="


@dataclass
class Tok:
    id: str = TOKEN
    accessor: str = ACCESSOR
    policies: list[str] = field(default_factory=lambda: ["app", "default"])
    display_name: str = "token-app"
    meta: dict[str, str] | None = field(default_factory=lambda: {"team": "x"})
    ttl: int = 3600
    creation_time: int = 1_700_000_000
    type: str = "service"
    entity_id: str = ""


@dataclass
class Decision:
    allowed: bool = True
    granting_policies: list[dict[str, str]] = field(
        default_factory=lambda: [{"name": "app", "type": "acl"}]
    )


def make_req(data: dict[str, Any] | None = None, op: str = "update",
             path: str = "encrypt/app") -> Request:
    return Request(
        operation=op, path=path, data=data if data is not None else {"plaintext": PLAINTEXT},
        storage=None, mount_path="transit/", client_token=TOKEN, token=Tok(),
        id="4c1a0d8e-0000-4000-8000-000000000001", remote_addr="10.0.0.9", remote_port=51234,
        mount_type="transit", mount_accessor="transit_abcd1234",
    )


def expected(salt: str, value: str) -> str:
    return "hmac-sha256:" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def new_broker() -> tuple[AuditBroker, StorageView]:
    storage = StorageView(InmemBackend(), "")
    return AuditBroker(storage), storage


async def salt_of(storage: StorageView, broker: AuditBroker, path: str) -> str:
    entry = next(e for e in broker.entries() if e.path == path)
    raw = await storage.get(f"audit/{entry.uuid}/salt")
    assert raw is not None
    return raw.decode()
