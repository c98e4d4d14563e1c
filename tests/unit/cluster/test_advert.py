"""Cluster certificate, leader record and the mTLS contexts built from it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from transit.cluster.advert import (
    LeaderRecord,
    leader_key,
    make_cluster_cert,
    ssl_client_context,
    ssl_server_context,
)


def test_cluster_cert_fields() -> None:
    cert_pem, key_pem = make_cluster_cert("node-a")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP521R1)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "fw-node-a" and cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fw-node-a"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    now = dt.datetime.now(dt.UTC)
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    assert dt.timedelta(seconds=25) <= now - before <= dt.timedelta(seconds=40)
    assert abs((after - now) - dt.timedelta(days=365 * 30)) < dt.timedelta(minutes=1)
    # a new certificate and key every time
    assert make_cluster_cert("node-a")[1] != key_pem


def test_leader_record_json_round_trip() -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    again = LeaderRecord.from_json(rec.to_json())
    assert again == rec
    assert rec.tls_name == "fw-n1" and leader_key("n1") == "core/leader/n1"
    assert "BEGIN" not in repr(rec)  # no key material in logs
    with pytest.raises(ValueError):
        LeaderRecord.from_json(b'{"node_id":"x"}')
    with pytest.raises(ValueError):
        LeaderRecord.from_json(b"[1]")
    term = LeaderRecord.create("n1", "https://a:8200", "https://a:8201", owner="n1@x", epoch=9)
    assert LeaderRecord.from_json(term.to_json()).epoch == 9
    data = orjson.loads(term.to_json())
    del data["epoch"]  # a record of an older version: epoch 0
    assert LeaderRecord.from_json(orjson.dumps(data)).epoch == 0
    data["epoch"] = {"x": 1}
    with pytest.raises(ValueError, match="epoch"):
        LeaderRecord.from_json(orjson.dumps(data))


def test_contexts_require_tls12_and_client_cert() -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    server, client = ssl_server_context(rec), ssl_client_context(rec)
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client.minimum_version >= ssl.TLSVersion.TLSv1_2


async def _exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str,
) -> tuple[bytes | None, int]:
    """Connect, send a line; (echoed line or None on any failure, server handler calls)."""
    calls = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    result: bytes | None = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname), 5)
        try:
            writer.write(b"ping\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            result = line or None
        finally:
            writer.close()
    except (ssl.SSLError, ConnectionError, OSError):
        result = None
    finally:
        srv.close()
        await srv.wait_closed()
    return result, calls


def test_mtls_handshake_succeeds_with_the_record() -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    got, calls = asyncio.run(_exchange(ssl_server_context(rec), ssl_client_context(rec), "fw-n1"))
    assert got == b"ping\n" and calls == 1


def test_client_with_another_cert_is_refused(tmp_path: Path) -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    other = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    # the intruder trusts the server's cert but presents its own identity
    intruder = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    intruder.load_verify_locations(cadata=rec.cert_pem)
    path = tmp_path / "id.pem"
    path.write_text(other.cert_pem + other.key_pem)
    intruder.load_cert_chain(path)
    got, calls = asyncio.run(_exchange(ssl_server_context(rec), intruder, "fw-n1"))
    assert got is None and calls == 0


def test_client_without_cert_is_refused() -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=rec.cert_pem)
    got, calls = asyncio.run(_exchange(ssl_server_context(rec), anonymous, "fw-n1"))
    assert got is None and calls == 0


def test_client_refuses_a_server_with_another_cert_or_name() -> None:
    rec = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    other = LeaderRecord.create("n1", "https://a:8200", "https://a:8201")
    got, _ = asyncio.run(_exchange(ssl_server_context(other), ssl_client_context(rec), "fw-n1"))
    assert got is None
    got, _ = asyncio.run(_exchange(ssl_server_context(rec), ssl_client_context(rec), "fw-n2"))
    assert got is None
