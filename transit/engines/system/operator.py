"""Where `sys/rekey/*` and `sys/generate-root/*` run (operations-api §0-2).

Vault keeps a rekey or root-generation attempt in the memory of the active node. Here a node
may run several worker processes (transit/workers.py), and the kernel hands each connection
to any of them, so every step of an attempt is run by **worker 0** of the active node: a
request that reaches another worker is sent to worker 0 over the supervisor's pipe
(`WorkerLink.call`), answered there, and the answer relayed back verbatim. Requests that a
standby receives are forwarded to the active node by the forwarding gate as usual, and reach
its worker 0 directly (the cluster listener runs there). So the attempt has exactly one home,
the same code path serves a one-process node, the shares never leave process memory and the
pipes, and nothing of an attempt is written to storage. Worker 0 restarting, sealing, or the
node losing the active role drops the attempt, as in Vault.

`HANDLERS` are the raw handlers `transit/api/status.py` serves: bare JSON, unauthenticated
(a token is ignored), not audited, DELETE included (`accepts_delete`). `sys/rekey/backup` is
logical, as in Vault (`read_backup`, `delete_backup`: a token with `read`/`delete` on it).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from transit.engines.system import generate_root, rekey
from transit.engines.system.ports import NodeControl
from transit.errors import ForwardToActive, InternalError, StorageError, TransitError, UserError
from transit.fields import FieldData
from transit.logical import Request, Response
from transit.rekey import BACKUP_PATH, OperatorError

log = logging.getLogger("transit.operator")

RawHandler = Callable[[NodeControl, str, dict[str, str], dict[str, Any]], Awaitable[tuple[int, bytes]]]
CALL = "operator"  # the WorkerLink call kind (transit/workers.py)

LOCAL: dict[str, RawHandler] = {
    "sys/rekey/init": rekey.init,
    "sys/rekey/update": rekey.update,
    "sys/rekey/verify": rekey.verify,
    "sys/rekey-recovery-key/init": rekey.recovery,
    "sys/rekey-recovery-key/update": rekey.recovery,
    "sys/rekey-recovery-key/verify": rekey.recovery,
    "sys/generate-root/attempt": generate_root.attempt,
    "sys/generate-root/update": generate_root.update,
}


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"errors": [message]})


async def run_local(core: NodeControl, path: str, method: str, query: dict[str, str],
                    body: dict[str, Any]) -> tuple[int, bytes]:
    """Run the handler in this process. `OperatorError`s become their answer; other
    `TransitError`s are raised for the app's error table."""
    try:
        return await LOCAL[path](core, method, query, body)
    except OperatorError as exc:
        return _error(exc.status, exc.message)


async def dispatch(core: NodeControl, path: str, method: str, query: dict[str, str],
                   body: dict[str, Any]) -> tuple[int, bytes]:
    """Run `path` where the attempts live: here, or on worker 0 of this node."""
    if not core.sealed and getattr(core, "standby", False):
        # a performance standby trying a read locally: the active node answers it
        raise ForwardToActive(f"{path} is answered by the active node")
    link = getattr(core.seal, "link", None)  # a worker of a several-process node
    if core.sealed or link is None or link.info.index == 0:
        return await run_local(core, path, method, query, body)
    answer = await link.call(CALL, {"path": path, "method": method, "query": dict(query),
                                    "body": body})
    if answer is None:
        return _error(503, "worker 0 of this node, which runs rekey and root generation, did "
                           "not answer; the outcome is unknown: check the status before "
                           "retrying")
    if answer[0] == "raise":
        raise answer[1]
    return answer[1], answer[2]


async def answer_call(core: NodeControl, payload: dict[str, Any]) -> tuple[Any, ...]:
    """Worker 0's side of `dispatch`: ("ok", status, body) or ("raise", TransitError)."""
    try:
        status, body = await run_local(core, payload["path"], payload["method"],
                                       payload["query"], payload["body"])
        return "ok", status, body
    except TransitError as exc:
        return "raise", exc
    except Exception:
        log.exception("%s %s failed", payload.get("method"), payload.get("path"))
        return "raise", InternalError("internal error")


def _routed(path: str) -> RawHandler:
    async def handler(core: NodeControl, method: str, query: dict[str, str], body: dict[str, Any]
                      ) -> tuple[int, bytes]:
        return await dispatch(core, path, method, query, body)

    handler.__name__ = handler.__qualname__ = path.replace("/", "_").replace("-", "_")
    handler.accepts_delete = True  # type: ignore[attr-defined]  # (transit/api/app.py)
    return handler


HANDLERS: dict[str, RawHandler] = {path: _routed(path) for path in LOCAL}


# -- the logical routes (system backend) ------------------------------------------------------


async def read_backup(node: NodeControl, req: Request, d: FieldData) -> Response:
    """GET sys/rekey/backup: the PGP-encrypted shares a `backup` rekey stored (§1.6)."""
    raw = await node.physical.get(BACKUP_PATH)
    if raw is None:
        raise UserError("no backed-up keys found")
    try:
        doc = orjson.loads(raw)
        keys = {str(fpr): [str(h) for h in hexes] for fpr, hexes in doc["Keys"].items()}
        data = {
            "nonce": str(doc.get("Nonce", "")), "keys": keys,
            "keys_base64": {fpr: [base64.b64encode(bytes.fromhex(h)).decode() for h in hexes]
                            for fpr, hexes in keys.items()},
        }
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StorageError(f"the stored unseal key backup is corrupt: {exc}") from None
    return Response(data=data, mirror_data=True)


async def delete_backup(node: NodeControl, req: Request, d: FieldData) -> None:
    """DELETE sys/rekey/backup (204, also when there is none)."""
    await node.physical.delete(BACKUP_PATH)
    return None
