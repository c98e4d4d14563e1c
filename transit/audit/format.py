"""Audit entries in the spec's shape (ha-and-sys-api §4.11), built as plain dicts.

Both entries carry `time`, `type`, `auth` (the caller's token), `request` and `error`; the
response entry adds `response`. Secrets (tokens, accessors, every data string) go through the
device's `Hasher`; non-secret auth fields (policies, display_name, metadata) stay clear.
"""

from __future__ import annotations

from typing import Any

from transit.audit.hashing import EMPTY, Hasher, elide_list_data
from transit.fields import parse_duration
from transit.gocompat import format_time_s
from transit.logical import Request, Response

NAMESPACE = {"id": "root"}


def auth_block(h: Hasher, req: Request, decision: Any) -> dict[str, Any]:
    tok = req.token
    if tok is not None:  # a TokenEntry (contracts §5.2)
        policies = tok.policies or []
        auth: dict[str, Any] = {
            "client_token": h.token(tok.id or req.client_token),
            "accessor": h.accessor(tok.accessor),
            "display_name": tok.display_name,
            "policies": policies,
            "token_policies": policies,
            "metadata": tok.meta or {},
            "entity_id": tok.entity_id,
            "token_type": tok.type or "service",
            "token_ttl": tok.ttl,
            "token_issue_time": format_time_s(int(tok.creation_time)) if tok.creation_time else "",
        }
    else:
        auth = {
            "client_token": h.token(req.client_token), "accessor": "", "display_name": "",
            "policies": [], "token_policies": [], "metadata": {}, "entity_id": "",
            "token_type": "", "token_ttl": 0, "token_issue_time": "",
        }
    if decision is not None:  # an ACL Decision (contracts §5.3)
        auth["policy_results"] = {
            "allowed": decision.allowed,
            "granting_policies": decision.granting_policies or [],
        }
    return auth


def request_block(h: Hasher, req: Request, exempt: frozenset[str]) -> dict[str, Any]:
    tok = req.token
    block: dict[str, Any] = {
        "id": req.id,
        "operation": req.operation,
        "mount_point": req.mount_path,
        "mount_type": req.mount_type,
        "mount_accessor": req.mount_accessor,
        "client_token": h.token(req.client_token),
        "client_token_accessor": h.accessor(tok.accessor) if tok is not None else "",
        "namespace": NAMESPACE,
        "path": req.mount_path + req.path,
        "data": h.data(req.data, exempt),
        "remote_address": req.remote_addr,
        "remote_port": req.remote_port,
    }
    wrap_ttl = req.headers.get("x-vault-wrap-ttl") if req.headers else None
    if wrap_ttl:
        try:
            block["wrap_ttl"] = parse_duration(wrap_ttl)
        except ValueError:
            pass
    return block


def _hash_token_fields(h: Hasher, block: dict[str, Any], secret: tuple[str, ...],
                       accessors: tuple[str, ...]) -> dict[str, Any]:
    out = dict(block)
    for k in secret:
        v = out.get(k)
        if isinstance(v, str):
            out[k] = h.token(v)
    for k in accessors:
        v = out.get(k)
        if isinstance(v, str):
            out[k] = h.accessor(v)
    return out


def response_block(h: Hasher, req: Request, resp: Response | None, exempt: frozenset[str],
                   elide: bool) -> dict[str, Any]:
    data = resp.data if resp is not None else None
    if data is not None and elide and req.operation == "list":
        data = elide_list_data(data)
    block: dict[str, Any] = {"mount_type": req.mount_type, "data": h.data(data, exempt)}
    if resp is None:
        return block
    if resp.auth:
        block["auth"] = _hash_token_fields(h, resp.auth, ("client_token",), ("accessor",))
    if resp.wrap_info:
        block["wrap_info"] = _hash_token_fields(
            h, resp.wrap_info, ("token",), ("accessor", "wrapped_accessor")
        )
    if resp.warnings:
        block["warnings"] = resp.warnings
    return block


def request_entry(h: Hasher, req: Request, decision: Any, error: str, now: str,
                  exempt: frozenset[str] = EMPTY) -> dict[str, Any]:
    return {
        "time": now,
        "type": "request",
        "auth": auth_block(h, req, decision),
        "request": request_block(h, req, exempt),
        "error": h.scrub(error, req.data, exempt) if error else error,
    }


def response_entry(h: Hasher, req: Request, decision: Any, resp: Response | None, error: str,
                   now: str, req_exempt: frozenset[str] = EMPTY,
                   resp_exempt: frozenset[str] = EMPTY, elide: bool = False,
                   reuse: dict[str, Any] | None = None) -> dict[str, Any]:
    """`reuse`: this device's request entry for the same request, whose (immutable once
    written) auth and request blocks are shared instead of being hashed again."""
    if reuse is not None:
        auth, request = reuse["auth"], reuse["request"]
    else:
        auth, request = auth_block(h, req, decision), request_block(h, req, req_exempt)
    return {
        "time": now,
        "type": "response",
        "auth": auth,
        "request": request,
        "response": response_block(h, req, resp, resp_exempt, elide),
        "error": h.scrub(error, req.data, req_exempt) if error else error,
    }
