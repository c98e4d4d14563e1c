"""Just enough OpenPGP (RFC 4880, RFC 6637) to do what Vault does with operators' PGP keys:
read a binary public key (Vault takes them base64-encoded), give its fingerprint, and encrypt
a short message (a hex unseal-key share, a root token) to it — `pgpkeys.EncryptShares`.

- Keys: version 4 public keys. Encryption to RSA (algorithms 1, 2) and to ECDH (18) over
  Curve25519, NIST P-256, P-384 and P-521. The key chosen is Go's `Entity.encryptionKey`: the
  newest unexpired subkey whose binding signature allows encryption, else the primary key
  when its self-signature has no key flags or allows encryption. Self-signatures are parsed
  for their flags and expiry but not verified (the operator supplies the keys; Go checks
  them, so a key with a broken self-signature is accepted here and refused by Vault).
- Message: a public-key encrypted session key packet (AES-256 session key) followed by a
  symmetrically encrypted integrity-protected data packet (version 1: AES-256 CFB, MDC)
  holding an uncompressed literal data packet — what `gpg --decrypt` and every OpenPGP
  implementation read.
- The fingerprint is the v4 one, SHA-1 over the primary key packet, shown lowercase hex.

Pure functions over `cryptography`; no I/O. Errors are `PGPError` (a ValueError) with Go's
messages where the caller shows them.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

TAG_PKESK, TAG_SIGNATURE, TAG_PUBLIC_KEY, TAG_LITERAL = 1, 2, 6, 11
TAG_USER_ID, TAG_PUBLIC_SUBKEY, TAG_SEIPD, TAG_MDC = 13, 14, 18, 19
TAG_TRUST, TAG_USER_ATTRIBUTE = 12, 17
RSA_ALGOS = (1, 2)  # RSA encrypt-or-sign, encrypt-only
ECDH = 18
AES256 = 9
_KEK_SIZES = {7: 16, 8: 24, 9: 32}  # AES-128/192/256
_KDF_HASHES = {8: hashlib.sha256, 9: hashlib.sha384, 10: hashlib.sha512}
_CURVE25519 = bytes.fromhex("2b060104019755010501")
_NIST: dict[bytes, Callable[[], ec.EllipticCurve]] = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1,
    bytes.fromhex("2b81040022"): ec.SECP384R1,
    bytes.fromhex("2b81040023"): ec.SECP521R1,
}
FLAG_ENCRYPT_COMMUNICATIONS, FLAG_ENCRYPT_STORAGE = 0x04, 0x08
_SUBKEY_BINDING = 0x18
_CERTIFICATIONS = (0x10, 0x11, 0x12, 0x13)


class PGPError(ValueError):
    """Malformed or unusable OpenPGP data; the message is Go's wording where it matters."""


@dataclass(slots=True)
class KeyPacket:
    algo: int
    created: int
    body: bytes  # the whole packet body, as the fingerprint hashes it
    params: bytes  # the algorithm-specific fields after the algorithm octet
    fingerprint: bytes = b""

    @property
    def key_id(self) -> bytes:
        return self.fingerprint[-8:]

    @property
    def can_encrypt(self) -> bool:
        return self.algo in RSA_ALGOS or self.algo == ECDH


@dataclass(slots=True)
class _SelfSig:
    created: int = 0
    flags: int | None = None  # None: no key-flags subpacket
    lifetime: int | None = None  # key expiration time (seconds after key creation)

    def expired(self, key: KeyPacket, now: float) -> bool:
        return bool(self.lifetime) and key.created + (self.lifetime or 0) < now

    def allows_encryption(self) -> bool:
        return self.flags is not None and bool(
            self.flags & (FLAG_ENCRYPT_COMMUNICATIONS | FLAG_ENCRYPT_STORAGE))


@dataclass(slots=True)
class PublicKey:
    """One transferable public key (Go's `openpgp.Entity`, public parts)."""

    primary: KeyPacket
    user_ids: list[bytes] = field(default_factory=list)
    primary_sig: _SelfSig | None = None  # newest self-certification of a user ID
    subkeys: list[tuple[KeyPacket, _SelfSig | None]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.primary.fingerprint.hex()

    def encryption_key(self, now: float | None = None) -> KeyPacket:
        """The key a message to this entity is encrypted to (Go's `encryptionKey`)."""
        now = time.time() if now is None else now
        best: tuple[int, KeyPacket] | None = None
        for sub, sig in self.subkeys:
            if (sig is not None and sig.allows_encryption() and sub.can_encrypt
                    and not sig.expired(sub, now) and (best is None or sig.created > best[0])):
                best = (sig.created, sub)
        if best is not None:
            return best[1]
        sig = self.primary_sig
        if self.primary.can_encrypt and (sig is None or sig.flags is None or (
                sig.allows_encryption() and not sig.expired(self.primary, now))):
            return self.primary
        raise PGPError(
            "openpgp: invalid argument: cannot encrypt a message to key id "
            f"{self.primary.key_id.hex()} because it has no valid encryption keys")


# -- reading --------------------------------------------------------------------------------


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each packet; old and new formats, definite lengths."""
    out, i, n = [], 0, len(data)
    while i < n:
        head = data[i]
        i += 1
        if not head & 0x80:
            raise PGPError("openpgp: invalid data: tag byte does not have MSB set")
        if head & 0x40:  # new format
            tag = head & 0x3F
            if i >= n:
                raise PGPError("unexpected EOF")
            first = data[i]
            if first < 192:
                length, i = first, i + 1
            elif first < 224:
                if i + 1 >= n:
                    raise PGPError("unexpected EOF")
                length, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
            elif first == 255:
                if i + 5 > n:
                    raise PGPError("unexpected EOF")
                length, i = struct.unpack(">I", data[i + 1 : i + 5])[0], i + 5
            else:
                raise PGPError("openpgp: unsupported feature: partial body length in a key")
        else:
            tag, kind = (head >> 2) & 0x0F, head & 0x03
            if kind == 3:
                length = n - i
            else:
                size = (1, 2, 4)[kind]
                if i + size > n:
                    raise PGPError("unexpected EOF")
                length = int.from_bytes(data[i : i + size], "big")
                i += size
        if i + length > n:
            raise PGPError("unexpected EOF")
        out.append((tag, data[i : i + length]))
        i += length
    return out


def _mpi(buf: bytes, at: int) -> tuple[bytes, int]:
    if at + 2 > len(buf):
        raise PGPError("unexpected EOF")
    bits = int.from_bytes(buf[at : at + 2], "big")
    end = at + 2 + (bits + 7) // 8
    if end > len(buf):
        raise PGPError("unexpected EOF")
    return buf[at + 2 : end], end


def _key_packet(body: bytes) -> KeyPacket:
    if len(body) < 6:
        raise PGPError("unexpected EOF")
    if body[0] != 4:
        raise PGPError(f"openpgp: unsupported feature: public key version {body[0]}")
    created = int.from_bytes(body[1:5], "big")
    fingerprint = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()  # noqa: S324
    return KeyPacket(body[5], created, body, body[6:], fingerprint)


def _self_sig(body: bytes) -> tuple[int, _SelfSig] | None:
    """(signature type, what it says about the key) of a v4 signature; None otherwise."""
    if len(body) < 6 or body[0] != 4:
        return None
    sig_type = body[1]
    hashed_len = int.from_bytes(body[4:6], "big")
    hashed = body[6 : 6 + hashed_len]
    if len(hashed) != hashed_len:
        raise PGPError("unexpected EOF")
    out = _SelfSig()
    i = 0
    while i < len(hashed):
        first = hashed[i]
        if first < 192:
            length, i = first, i + 1
        elif first < 255:
            if i + 1 >= len(hashed):
                raise PGPError("unexpected EOF")
            length, i = ((first - 192) << 8) + hashed[i + 1] + 192, i + 2
        else:
            length, i = int.from_bytes(hashed[i + 1 : i + 5], "big"), i + 5
        sub = hashed[i : i + length]
        i += length
        if not sub:
            raise PGPError("openpgp: invalid data: zero length signature subpacket")
        kind, value = sub[0] & 0x7F, sub[1:]
        if kind == 2 and len(value) == 4:
            out.created = int.from_bytes(value, "big")
        elif kind == 9 and len(value) == 4:
            out.lifetime = int.from_bytes(value, "big")
        elif kind == 27:
            out.flags = value[0] if value else 0
    return sig_type, out


def read_public_key(data: bytes) -> PublicKey:
    """The first transferable public key in `data` (binary OpenPGP, Go's `ReadEntity`)."""
    packets = _packets(data)
    if not packets or packets[0][0] != TAG_PUBLIC_KEY:
        raise PGPError("openpgp: invalid data: first packet was not a public/private key")
    key = PublicKey(_key_packet(packets[0][1]))
    current: KeyPacket | None = None  # the subkey whose signatures follow
    sub_sig: _SelfSig | None = None
    in_user_id = False
    for tag, body in packets[1:]:
        if tag == TAG_PUBLIC_KEY:
            break  # the next entity
        if tag == TAG_USER_ID:
            key.user_ids.append(body)
            in_user_id = True
        elif tag == TAG_USER_ATTRIBUTE:
            in_user_id = False
        elif tag == TAG_PUBLIC_SUBKEY:
            if current is not None:
                key.subkeys.append((current, sub_sig))
            current, sub_sig, in_user_id = _key_packet(body), None, False
        elif tag == TAG_SIGNATURE:
            parsed = _self_sig(body)
            if parsed is None:
                continue
            sig_type, sig = parsed
            if current is not None and sig_type == _SUBKEY_BINDING:
                if sub_sig is None or sig.created >= sub_sig.created:
                    sub_sig = sig
            elif current is None and in_user_id and sig_type in _CERTIFICATIONS and (
                    key.primary_sig is None or sig.created >= key.primary_sig.created):
                key.primary_sig = sig
        elif tag == TAG_TRUST:
            continue
    if current is not None:
        key.subkeys.append((current, sub_sig))
    if not key.user_ids:
        raise PGPError("openpgp: invalid data: entity without any identities")
    return key


# -- encrypting -----------------------------------------------------------------------------


def _header(tag: int, length: int) -> bytes:
    if length < 192:
        return bytes([0xC0 | tag, length])
    if length < 8384:
        length -= 192
        return bytes([0xC0 | tag, (length >> 8) + 192, length & 0xFF])
    return bytes([0xC0 | tag, 0xFF]) + length.to_bytes(4, "big")


def _packet(tag: int, body: bytes) -> bytes:
    return _header(tag, len(body)) + body


def _to_mpi(value: bytes) -> bytes:
    value = value.lstrip(b"\x00")
    bits = (len(value) - 1) * 8 + value[0].bit_length() if value else 0
    return bits.to_bytes(2, "big") + value


def _session_block(session_key: bytes) -> bytes:
    checksum = sum(session_key) & 0xFFFF
    return bytes([AES256]) + session_key + checksum.to_bytes(2, "big")


def _encrypt_rsa(key: KeyPacket, block: bytes) -> bytes:
    n, at = _mpi(key.params, 0)
    e, _ = _mpi(key.params, at)
    try:
        public = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big"))
        ct = public.public_key().encrypt(block, padding.PKCS1v15())
    except ValueError as exc:
        raise PGPError(f"openpgp: invalid RSA public key: {exc}") from None
    return _to_mpi(ct)


def _encrypt_ecdh(key: KeyPacket, block: bytes) -> bytes:
    params = key.params
    if not params:
        raise PGPError("unexpected EOF")
    oid = params[1 : 1 + params[0]]
    point, at = _mpi(params, 1 + params[0])
    kdf = params[at : at + 4]
    if len(kdf) != 4 or kdf[0] != 3 or kdf[1] != 1:
        raise PGPError("openpgp: invalid data: bad ECDH KDF parameters")
    hash_fn, kek_size = _KDF_HASHES.get(kdf[2]), _KEK_SIZES.get(kdf[3])
    if hash_fn is None or kek_size is None:
        raise PGPError("openpgp: unsupported feature: ECDH KDF hash or cipher")
    try:
        if oid == _CURVE25519:
            if len(point) != 33 or point[0] != 0x40:
                raise PGPError("openpgp: invalid data: bad Curve25519 point")
            eph = x25519.X25519PrivateKey.generate()
            shared = eph.exchange(x25519.X25519PublicKey.from_public_bytes(point[1:]))
            eph_point = b"\x40" + eph.public_key().public_bytes_raw()
        elif oid in _NIST:
            curve = _NIST[oid]()
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
            eph_nist = ec.generate_private_key(curve)
            shared = eph_nist.exchange(ec.ECDH(), peer)
            eph_point = eph_nist.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        else:
            raise PGPError(f"openpgp: unsupported feature: ECDH curve {oid.hex()}")
    except ValueError as exc:
        if isinstance(exc, PGPError):
            raise
        raise PGPError(f"openpgp: invalid ECDH public key: {exc}") from None
    param = (bytes([len(oid)]) + oid + bytes([ECDH]) + kdf + b"Anonymous Sender    "
             + key.fingerprint)
    kek = hash_fn(b"\x00\x00\x00\x01" + shared + param).digest()[:kek_size]
    pad = 8 - len(block) % 8
    wrapped = aes_key_wrap(kek, block + bytes([pad]) * pad)
    return _to_mpi(eph_point) + bytes([len(wrapped)]) + wrapped


def encrypt(key: PublicKey, plaintext: bytes, now: float | None = None) -> bytes:
    """A binary OpenPGP message with `plaintext` encrypted to `key` (Go's `openpgp.Encrypt`
    with no signer and no compression)."""
    target = key.encryption_key(now)
    session_key = os.urandom(32)
    block = _session_block(session_key)
    if target.algo in RSA_ALGOS:
        fields = _encrypt_rsa(target, block)
    else:
        fields = _encrypt_ecdh(target, block)
    pkesk = _packet(TAG_PKESK, bytes([3]) + target.key_id + bytes([target.algo]) + fields)
    literal = _packet(TAG_LITERAL, b"b\x00" + bytes(4) + plaintext)
    prefix = os.urandom(16)
    prefix += prefix[-2:]
    mdc_head = bytes([0xD3, 0x14])
    digest = hashlib.sha1(prefix + literal + mdc_head).digest()  # noqa: S324 (OpenPGP MDC)
    body = _cfb_encrypt(session_key, prefix + literal + mdc_head + digest)
    return pkesk + _packet(TAG_SEIPD, b"\x01" + body)


def _cfb_encrypt(key: bytes, data: bytes) -> bytes:
    """AES in full-block CFB mode with a zero IV (what SEIPD v1 uses), over AES-ECB: the
    library's CFB mode is deprecated."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 (one block at a time)
    out = bytearray()
    feedback = bytes(16)
    for i in range(0, len(data), 16):
        stream = ecb.update(feedback)
        chunk = bytes(a ^ b for a, b in zip(data[i : i + 16], stream, strict=False))
        out += chunk
        feedback = chunk
    return bytes(out)
