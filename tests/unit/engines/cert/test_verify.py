"""Pure pieces of the cert auth method (transit/engines/cert/verify.py, roles.py) and the
forwarded client-certificate header (transit/api/edge.py)."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transit.api.edge import CLIENT_CERT_HEADER, _certs_from_header, cert_header, parse
from transit.cluster.listener import FORWARDED_SCOPE
from transit.engines.cert.roles import CertRole, parse_pem
from transit.engines.cert.verify import asn1_string, glob, key_id_hex


@pytest.mark.parametrize("pattern, value, ok", [
    ("*", "", True), ("a*", "abc", True), ("*.example.com", "x.example.com", True),
    ("*.example.com", "example.com", False), ("a*c*e", "abcde", True), ("a?c", "abc", False),
    ("[ab]", "a", False), ("exact", "exact", True), ("exact", "Exact", False),
])
def test_glob_is_go_glob(pattern: str, value: str, ok: bool) -> None:
    assert glob(pattern, value) is ok


def test_asn1_string() -> None:
    assert asn1_string(b"\x0c\x03abc") == "abc"  # UTF8String
    assert asn1_string(b"\x13\x02hi") == "hi"  # PrintableString
    assert asn1_string(b"\x16\x01x") == "x"  # IA5String
    assert asn1_string(b"\x1e\x04\x00h\x00i") == "hi"  # BMPString
    long = b"y" * 200
    assert asn1_string(b"\x0c\x81\xc8" + long) == long.decode()
    for bad in (b"", b"\x0c", b"\x04\x01x", b"\x0c\x05ab", b"\x0c\x80", b"\x0c\x02\xff\xfe"):
        assert asn1_string(bad) is None


def test_key_id_hex() -> None:
    assert key_id_hex(b"\x01\xab") == "01:ab"
    assert key_id_hex(None) == ""


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_parse_pem_skips_garbage() -> None:
    pem = _pem()
    assert parse_pem("") == [] and parse_pem("junk") == []
    assert len(parse_pem(pem + pem)) == 2
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert len(parse_pem(broken + pem)) == 1


def test_role_round_trip() -> None:
    role = CertRole(name="r", certificate=_pem(), display_name="d")
    role.lists["allowed_dns_sans"] = ["a"]
    back = CertRole.from_json(role.to_json())
    assert back.to_response() == role.to_response()
    assert back.to_response()["allowed_names"] is None


def test_forwarded_client_certificate_header() -> None:
    pem = _pem()
    der = ssl_der(pem)
    assert cert_header(None) is None  # not TLS: no header
    assert cert_header([]) == b"-"
    value = cert_header([pem])
    assert value == base64.b64encode(der)
    assert _certs_from_header(b"-") == [] and _certs_from_header(b"%%%") == []

    def scope(headers: list[tuple[bytes, bytes]], forwarded: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "type": "http", "method": "POST", "path": "/v1/auth/cert/login",
            "headers": headers, "client": ("10.0.0.1", 1),
            "extensions": {"tls": {"client_cert_chain": ["standby's cluster cert"]}}}
        if forwarded:
            out[FORWARDED_SCOPE] = True
        return out

    # the active node believes the header, never the cluster connection's own certificate
    inc = parse(scope([(CLIENT_CERT_HEADER, value)], True))
    assert inc.client_certs is not None and ssl_der(inc.client_certs[0]) == der
    assert parse(scope([], True)).client_certs is None  # the client did not use TLS
    # on the API port the connection's certificate counts, and a client's header does not
    inc = parse(scope([(CLIENT_CERT_HEADER, value)], False))
    assert inc.client_certs == ["standby's cluster cert"]


def ssl_der(pem: str) -> bytes:
    import ssl
    return ssl.PEM_cert_to_DER_cert(pem)
