"""Vault's wire format: envelope key order, sorted data, the error table."""

from __future__ import annotations

import orjson

from transit import errors
from transit.api.wire import envelope, error_response


def test_envelope_order_and_sorted_data() -> None:
    body = envelope({"b": 1, "a": {"z": 1, "y": 2}}, None, "transit")
    keys = list(orjson.loads(body))
    assert keys == ["request_id", "lease_id", "renewable", "lease_duration", "data",
                    "wrap_info", "warnings", "auth", "mount_type"]
    assert b'"data":{"a":{"y":2,"z":1},"b":1}' in body
    parsed = orjson.loads(body)
    assert parsed["warnings"] is None and parsed["mount_type"] == "transit"
    assert len(parsed["request_id"]) == 36


def test_envelope_extra_top_and_warnings() -> None:
    parsed = orjson.loads(envelope({"k": 1}, ["w"], "system", extra_top={"k": 1}))
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

    ids = {request_id() for _ in range(100)}
    assert len(ids) == 100
    for rid in ids:
        u = uuid.UUID(rid.decode())
        assert u.version == 4 and str(u) == rid.decode()
