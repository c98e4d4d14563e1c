"""`sys/seal`, `sys/rotate`, `sys/key-status` (spec ha-and-sys-api §4.6, §5.1).

These pass the core's pipeline (token, ACL with sudo, audit); the handlers reach the node
through its `NodeControl` port (`node.barrier`, `node.seal`, `node.pre_seal()`).
"""

from __future__ import annotations

import inspect

from transit.engines.system.ports import NodeControl
from transit.errors import InternalError
from transit.fields import FieldData
from transit.logical import Request, Response


async def seal(node: NodeControl, req: Request, d: FieldData) -> None:
    """Seal this node: the core tears down what it set up, then the barrier drops its keys."""
    if getattr(node, "standby", False):
        raise InternalError("vault cannot seal when in standby mode; please restart instead")
    result = node.pre_seal()
    if inspect.isawaitable(result):
        await result
    node.seal.seal()
    return None


async def rotate(node: NodeControl, req: Request, d: FieldData) -> None:
    """Add a barrier key term; new writes use it, older values stay readable."""
    await node.barrier.rotate()
    return None


async def key_status(node: NodeControl, req: Request, d: FieldData) -> Response:
    """`{"term", "install_time", "encryptions"}`, also repeated at the top level as Vault's
    older sys reads do."""
    return Response(data=node.barrier.key_status(), mirror_data=True)
