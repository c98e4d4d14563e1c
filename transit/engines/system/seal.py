"""`sys/seal`, `sys/rotate`, `sys/key-status` (spec ha-and-sys-api §4.6, §5.1).

These pass the core's pipeline (token, ACL with sudo, audit); the handlers reach the core
through `b.core` (`core.barrier`, `core.seal`, `core.pre_seal()`).
"""

from __future__ import annotations

import inspect
from typing import Any

from transit.engines.fields import FieldData
from transit.errors import InternalError
from transit.logical import Request, Response


async def seal(b: Any, req: Request, d: FieldData) -> None:
    """Seal this node: the core tears down what it set up, then the barrier drops its keys."""
    core = b.core
    if getattr(core, "standby", False):
        raise InternalError("vault cannot seal when in standby mode; please restart instead")
    result = core.pre_seal()
    if inspect.isawaitable(result):
        await result
    core.seal.seal()
    return None


async def rotate(b: Any, req: Request, d: FieldData) -> None:
    """Add a barrier key term; new writes use it, older values stay readable."""
    await b.core.barrier.rotate()
    return None


async def key_status(b: Any, req: Request, d: FieldData) -> Response:
    """`{"term", "install_time", "encryptions"}`, also repeated at the top level as Vault's
    older sys reads do."""
    return Response(data=b.core.barrier.key_status(), mirror_data=True)
