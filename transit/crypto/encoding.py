"""Go-compatible base64 and compact JSON.

(The `vault:vN:` format is `transit.crypto.ciphertext`'s; Go integers and times are
`transit.gocompat`'s.)

`b64decode` behaves like Go's `base64.StdEncoding.DecodeString`: padding is required, `\\r` and
`\\n` are skipped anywhere, non-zero trailing bits are accepted, and errors carry Go's exact text
`illegal base64 data at input byte N` (N counted in UTF-8 bytes), which Vault passes through
verbatim. It is the one Go-compatible decoder of the package: valid input takes a C fast path,
only bad input pays for the Go-exact error position.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from transit.errors import CryptoError

_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_STD_MAP = {ord(c): i for i, c in enumerate(_STD)}
_URL_MAP = {ord(c): i for i, c in enumerate(_URL)}
_NL = (0x0A, 0x0D)
_a2b = binascii.a2b_base64


class Base64Error(CryptoError, ValueError):
    """A Go `CorruptInputError`; `.offset` is the byte offset Go reports.

    Also a ValueError, like Python's own `binascii.Error`.
    """

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")
        self.offset = offset


def _go_decode(src: bytes, dmap: dict[int, int], padded: bool) -> bytes:
    """A port of Go's `Encoding.Decode` (decodeQuantum loop), used when the fast path fails."""
    out = bytearray()
    si, n = 0, len(src)
    while si < n:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        err: int | None = None
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                if j == 1 or padded:
                    raise Base64Error(si - j)
                dlen = j
                break
            c = src[si]
            si += 1
            v = dmap.get(c)
            if v is not None:
                dbuf[j] = v
                j += 1
                continue
            if c in _NL:
                continue
            if not padded or c != 0x3D:
                raise Base64Error(si - 1)
            # padding reached
            if j in (0, 1):
                raise Base64Error(si - 1)
            if j == 2:
                while si < n and src[si] in _NL:
                    si += 1
                if si == n:
                    raise Base64Error(n)
                if src[si] != 0x3D:
                    raise Base64Error(si - 1)
                si += 1
            while si < n and src[si] in _NL:
                si += 1
            if si < n:
                err = si
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        out += val.to_bytes(3, "big")[: dlen - 1]
        if err is not None:
            raise Base64Error(err)
    return bytes(out)


def b64decode(s: str | bytes) -> bytes:
    """Go `base64.StdEncoding.DecodeString`; raises `Base64Error` (a CryptoError, 400)."""
    # Fast path: Python's strict mode agrees with Go on what it accepts, except that it
    # tolerates surplus "=" (after a full quantum, or more than two), which the length and
    # tail checks send the slow way.
    if not len(s) & 3 and s[-3:-2] != ("=" if isinstance(s, str) else b"="):
        try:
            return _a2b(s, strict_mode=True)
        except ValueError:  # binascii.Error, or a non-ASCII str
            pass
    # Go also skips CR/LF anywhere; anything else strict mode refused is an error whose byte
    # offset only the transcription of Go's decoder can tell.
    raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    return _go_decode(raw, _STD_MAP, True)


def b64decode_rawurl(s: str | bytes) -> bytes:
    """Go `base64.RawURLEncoding.DecodeString` (JWS signatures)."""
    raw = s.encode() if isinstance(s, str) else s
    return _go_decode(raw, _URL_MAP, False)


def b64encode(b: bytes) -> str:
    return binascii.b2a_base64(b, newline=False).decode("ascii")


def b64encode_rawurl(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def dump_json(obj: object) -> bytes:
    """Compact JSON bytes for stored policies and backups. Stdlib json, not orjson: RSA/EC
    integers exceed 64 bits, which orjson refuses."""
    return json.dumps(obj, separators=(",", ":")).encode()


def now_utc() -> datetime:
    return datetime.now(UTC)
