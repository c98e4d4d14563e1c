"""Vault's wire format: envelope key order, sorted data, the error table."""

from __future__ import annotations

import orjson

from transit import errors
from transit.api.wire import envelope, error_response
from transit.logical import Response


def test_envelope_order_and_sorted_data() -> None:
    body = envelope(Response(data={"b": 1, "a": {"z": 1, "y": 2}}), "transit")
    keys = list(orjson.loads(body))
    assert keys == ["request_id", "lease_id", "renewable", "lease_duration", "data",
                    "wrap_info", "warnings", "auth", "mount_type"]
    assert b'"data":{"a":{"y":2,"z":1},"b":1}' in body
    parsed = orjson.loads(body)
    assert parsed["warnings"] is None and parsed["mount_type"] == "transit"
    assert len(parsed["request_id"]) == 36


def test_envelope_extra_top_and_warnings() -> None:
    parsed = orjson.loads(envelope(Response(data={"k": 1}, warnings=["w"], mirror_data=True), "system"))
    assert parsed["warnings"] == ["w"] and parsed["k"] == 1


def test_error_table() -> None:
    assert error_response(errors.UserError("bad")) == (400, b'{"errors":["bad"]}')
    assert error_response(errors.CryptoError("x"))[0] == 400
    assert error_response(errors.PermissionDenied()) == (403, b'{"errors":["permission denied"]}')
    code, body = error_response(errors.InternalError("boom"))
    assert code == 500 and orjson.loads(body) == {"errors": ["1 error occurred:\n\t* boom\n\n"]}
    code, body = error_response(errors.UnsupportedPath())
    assert code == 404 and "unsupported path" in body.decode()
    assert error_response(errors.UnsupportedOperation())[0] == 405
    assert error_response(errors.RequestTooLarge())[0] == 413


def test_request_id_is_a_uuid4() -> None:
    import uuid

    from transit.api.wire import request_id

    ids = {request_id() for _ in range(1000)}  # several batches of made-ahead ids
    assert len(ids) == 1000
    for rid in ids:
        u = uuid.UUID(rid.decode())
        assert u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == rid.decode()


def test_a_forked_worker_never_repeats_its_parents_request_ids() -> None:
    import os

    from transit.api.wire import new_request_id

    new_request_id()  # the parent has ids made ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it would hand out next
        os.write(write, "".join(new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = "".join(new_request_id() for _ in range(10))
    assert len(child) == len(parent) == 360
    assert {child[i:i + 36] for i in range(0, 360, 36)}.isdisjoint(
        {parent[i:i + 36] for i in range(0, 360, 36)})


def test_envelope_auth_wrap_and_lease() -> None:
    resp = Response(auth={"client_token": "t"}, wrap_info={"token": "w"}, lease_duration=60,
                    renewable=True, lease_id="l")
    parsed = orjson.loads(envelope(resp, "token", "11111111-2222-4333-8444-555555555555"))
    assert parsed["request_id"] == "11111111-2222-4333-8444-555555555555"
    assert parsed["auth"] == {"client_token": "t"} and parsed["wrap_info"] == {"token": "w"}
    assert parsed["lease_duration"] == 60 and parsed["renewable"] is True
    assert parsed["lease_id"] == "l" and parsed["data"] is None


def test_audit_failed_is_opaque() -> None:
    assert error_response(errors.AuditFailed("disk full")) == (500, b'{"errors":["internal error"]}')
