"""The active node's advertisement and its cluster TLS material (spec §1.4, §2.3).

Each time a node becomes active it makes a fresh self-signed ECDSA P-521 certificate (CN and
DNS SAN `fw-<node_id>`, ServerAuth + ClientAuth, CA=true, valid now−30 s .. now+30 y) and
advertises it, private key included, at `core/leader/<node_id>` through the barrier. Every
unsealed node can read it, so the standbys present that very certificate and key as their
client identity when they forward, and the active's cluster listener trusts nothing else.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from dataclasses import asdict, dataclass, field

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = dt.timedelta(days=365 * 30)
CLOCK_SKEW = dt.timedelta(seconds=30)


def tls_name(node_id: str) -> str:
    """The CN, DNS SAN and TLS server name of a node's cluster certificate."""
    return f"fw-{node_id}"


def leader_key(node_id: str) -> str:
    """Where (inside the barrier) the advertisement of `node_id` lives."""
    return f"core/leader/{node_id}"


def make_cluster_cert(node_id: str) -> tuple[str, str]:
    """A fresh self-signed cluster certificate and its key, as (cert PEM, PKCS#8 key PEM)."""
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, tls_name(node_id))])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(tls_name(node_id))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA512())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


@dataclass(frozen=True)
class LeaderRecord:
    """The advertisement of the active node (JSON, barrier-encrypted)."""

    node_id: str
    api_addr: str
    cluster_addr: str
    cert_pem: str = field(repr=False)
    key_pem: str = field(repr=False)
    # The lock owner that wrote it (`<node id>@<instance>`, transit/cluster/identity.py);
    # "" in records of older versions. Processes sharing a node id share the record's key.
    owner: str = ""
    # The lock epoch of the term it advertises (0 in records of older versions): sibling
    # workers take the active role only once worker 0 has advertised this very term.
    epoch: int = 0

    @classmethod
    def create(cls, node_id: str, api_addr: str, cluster_addr: str, *,
               owner: str = "", epoch: int = 0) -> LeaderRecord:
        """A record with freshly generated cluster TLS material."""
        cert_pem, key_pem = make_cluster_cert(node_id)
        return cls(node_id, api_addr, cluster_addr, cert_pem, key_pem, owner, epoch)

    def advertises(self, owner: str) -> bool:
        """Whether this is the advertisement of the lock holder `owner` (a record without
        an owner, from an older version, is taken at its word)."""
        return not self.owner or self.owner == owner

    @property
    def tls_name(self) -> str:
        return tls_name(self.node_id)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> LeaderRecord:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("leader record is not a JSON object")
        try:
            return cls(
                node_id=str(data["node_id"]), api_addr=str(data["api_addr"]),
                cluster_addr=str(data["cluster_addr"]), cert_pem=str(data["cert_pem"]),
                key_pem=str(data["key_pem"]), owner=str(data.get("owner") or ""),
                epoch=int(data.get("epoch") or 0),
            )
        except KeyError as exc:
            raise ValueError(f"leader record lacks {exc.args[0]!r}") from None
        except TypeError:
            raise ValueError("leader record has a malformed epoch") from None


def _load_identity(ctx: ssl.SSLContext, record: LeaderRecord) -> None:
    """Load the record's cert and key into `ctx`. OpenSSL reads them only from a path: on
    Linux an anonymous in-memory file (memfd, through /proc/self/fd), so the private key
    never touches a file system; elsewhere a private 0600 temporary file, removed as soon as
    it has been read."""
    pem = (record.cert_pem + record.key_pem).encode()
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("transit-cluster-identity", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="transit-cluster-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


def ssl_server_context(record: LeaderRecord) -> ssl.SSLContext:
    """The active's cluster listener: TLS ≥ 1.2, a client certificate is required and only the
    record's own certificate is trusted."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=record.cert_pem)
    _load_identity(ctx, record)
    return ctx


def ssl_client_context(record: LeaderRecord) -> ssl.SSLContext:
    """A standby dialling the active: presents the record's cert and key and trusts only that
    certificate. Connect with `server_hostname=record.tls_name` (`fw-<node_id>`)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cadata=record.cert_pem)
    _load_identity(ctx, record)
    return ctx
