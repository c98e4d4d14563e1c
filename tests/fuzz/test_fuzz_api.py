"""Property-based fuzzing of the whole HTTP API (issue 9, item 5).

Requests to every route of every engine (`tests/fuzz/routes.py` reads them from the engines'
own route tables), with generated methods, paths (control characters raw and percent-encoded,
Unicode, dot segments, `//`, `%2F`, very long segments), headers (token variants,
Content-Type, X-Vault-Wrap-TTL, X-Vault-Index, ...) and bodies (JSON of every type, size and
depth, and bodies that are not JSON), sent byte for byte over a socket (`tests/fuzz/wire.py`).

Properties of every answer (`problems`):
  * an answer comes, within `wire.ANSWER_TIMEOUT`, with a status below 500, except the 500s
    Vault itself gives for the same input (`LEGIT_500`, each with its spec reference);
  * an error (>= 400) has Vault's body, `{"errors": [...]}`, except Vault's envelopes (batch
    partial failures, KV v2's "invalid path" 404 and its read of a deleted version), HEAD, and
    the HTTP parser's own plain-text 400 for a request it cannot parse;
  * no traceback, in the body or in the server log;
  * a path with a non-printable character is refused with a 400;
  * the limited token never gets a 2xx on a path its policy denies, no token (or a bogus one)
    never gets a 2xx outside the unauthenticated paths, `sys/internal/ui/mounts` shows a
    caller only the mounts it may use, and no caller but root ever sees the canary secrets;
  * the server's memory stays below `RSS_LIMIT_KIB`, and it still answers at the end.

Runs are deterministic (`derandomize=True`, no example database). A failure prints the
falsifying `Case(...)`, which `Case.send(port)` replays. `TRANSIT_FUZZ_SCALE` multiplies the
example counts for a longer run (default 1: about a minute on two cores);
`TRANSIT_FUZZ_RANDOM=1` draws other examples on every run (replay one with pytest's
`--hypothesis-seed`), `TRANSIT_FUZZ_EVENTS=1` adds every answer's status and start to the
`--hypothesis-show-statistics` report.
"""

from __future__ import annotations

import json
import os
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httptools
import pytest
import requests
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from tests.fuzz import wire
from tests.fuzz.conftest import (
    ALLOWED_PREFIXES,
    CANARY,
    CANARY_B64,
    DENY_EXACT,
    DENY_GLOB,
    FIXTURE_MOUNTS,
    KEYS,
    LIMITED_POLICY,
    LIMITED_TOKEN,
    ROOT_TOKEN,
    RUNTIME,
    RUNTIME_NAMES,
    FuzzEnv,
)
from tests.fuzz.routes import Template, all_templates, check_templates, param_names
from transit.api.status import STATUS_HANDLERS
from transit.fields import FieldType

SCALE = max(1, int(os.environ.get("TRANSIT_FUZZ_SCALE", "1")))
RSS_LIMIT_KIB = 600 * 1024
TEMPLATES = all_templates()
ROUTED = [t for t in TEMPLATES if t.route is not None]

FUZZ = settings(
    deadline=None,
    # deterministic in CI; TRANSIT_FUZZ_RANDOM=1 (with pytest's --hypothesis-seed=N to replay)
    # explores other examples on a local run
    derandomize=not os.environ.get("TRANSIT_FUZZ_RANDOM"),
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)

# -- the strings a request is made of ---------------------------------------------------------

# C0 controls and DEL (raw or percent-encoded), and other runes Go's unicode.IsPrint refuses.
CONTROL = [chr(c) for c in [*range(0x20), 0x7F]]
NON_PRINTABLE = ["\x85", "\xa0", "\u200b", "\u2028", "\ufeff", "\u3000", "\U000e0001"]


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `options`, each drawn in proportion to its weight (st.one_of draws its distinct
    branches uniformly, and a repeated branch counts once)."""
    index = [i for i, (w, _) in enumerate(options) for _ in range(w)]
    return st.sampled_from(index).flatmap(lambda i: options[i][1])


def pct(s: str) -> str:
    """Every byte of the UTF-8 encoding percent-encoded, letters included."""
    return "".join(f"%{b:02X}" for b in s.encode("utf-8"))


KEY_NAMES = [*KEYS, "production", "prod.v2", "prod-x", "missing", "new", "denied", "public"]
valid_names = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,14}[A-Za-z0-9_])?", fullmatch=True)
odd_segments = st.sampled_from([
    "..", ".", "", "%2E%2E", "%2e", ".%2E", "%2F", "a%2Fb", "prod%2F..%2Fother", "%2Fprod",
    "prod%2F", "%", "%zz", "%%", "%25", "%252F", "%C0%AE", "%FF", "%F0%9F%98%80", "a b",
    "a%20b", "a+b", "a;b", "a,b", "*", "+", "{name}", "$", "\\", "'", '"', "<x>", "~",
    "prod ", " prod", "PROD", "Prod", "prod\\", "..;", "%2e%2e%2f", "prod%2Fconfig", "prod?x",
    "prod#x", "?", "#", "prod/", "/prod", "prod/..", "..%2Fprod", "é", "ключ", "キー", "😀",
    "v\u00b2", "%C2%B2", "v%C2%B2",
])
control_segments = st.builds(
    lambda a, c, enc, b: a + (pct(c) if enc else c) + b,
    st.sampled_from(["", "prod", "denied", "seal"]),
    st.sampled_from(CONTROL + NON_PRINTABLE),
    st.sampled_from([True, True, True, False]),  # raw: the HTTP parser's 400, a quarter
    st.sampled_from(["", "x", "/rotate"]),
)
unicode_segments = st.builds(
    lambda s, enc: quote(s, safe="") if enc else s,
    st.text(min_size=1, max_size=6), st.sampled_from([True, True, True, False]),
)
long_segments = st.sampled_from([255, 256, 1024, 8192, 65536]).map(lambda n: "a" * n)
hostile_segments = st.one_of(odd_segments, control_segments, unicode_segments, long_segments)


def with_hostile(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return weighted((3, valid), (1, hostile_segments))


key_names = with_hostile(st.one_of(st.sampled_from(KEY_NAMES), valid_names))
sub_paths = st.one_of(
    st.sampled_from(["denied", "public", "a/b", "denied/", "x/denied", "deep/er/path", "", "/"]),
    st.lists(valid_names, min_size=1, max_size=4).map("/".join),
)
PARAMS: dict[str, st.SearchStrategy[str]] = {
    "name": key_names,
    "source": with_hostile(st.sampled_from(["platform", "seal", "all", *KEY_NAMES])),
    "destination": key_names,
    "role_name": with_hostile(st.sampled_from(["r1", "missing"]) | valid_names),
    "path": with_hostile(sub_paths | st.sampled_from([*FIXTURE_MOUNTS, "new-mount", "file"])),
    "rest": with_hostile(sub_paths),
    "type": with_hostile(st.sampled_from([
        "encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain"])),
    "version": with_hostile(st.sampled_from(
        ["1", "2", "latest", "0", "-1", "v1", "99999999999999999999", "1.5", "1/2"])),
    "urlalgorithm": with_hostile(st.sampled_from([
        "sha2-256", "sha2-224", "sha2-384", "sha2-512", "sha3-256", "sha3-512", "sha1", "md5",
        "none", "SHA2-256", "sha2-256/extra"])),
    "urlbytes": with_hostile(st.sampled_from(
        ["0", "1", "32", "-1", "1.5", "abc", "99999999999999999999", "65536", "1048577"])),
    "plaintext": with_hostile(st.sampled_from(["plaintext", "wrapped"])),
    "migration_id": with_hostile(st.uuids().map(str)),
    "id": with_hostile(st.one_of(st.uuids().map(str), st.sampled_from(["missing", "a"]))),
    "prefix": with_hostile(sub_paths | st.sampled_from(["auth", "auth/token", "sys/wrapping"])),
    "url_lease_id": with_hostile(sub_paths | st.just("auth/token/create/h" + "0" * 64)),
    "username": with_hostile(st.sampled_from(["alice", "ALICE", "missing"]) | valid_names),
    "mount_accessor": with_hostile(st.sampled_from(["auth_userpass_00000000"]) | valid_names),
    "alias_identifier": with_hostile(st.sampled_from(["alice", "missing"]) | valid_names),
}
assert param_names(TEMPLATES) <= set(PARAMS), param_names(TEMPLATES) - set(PARAMS)

# -- bodies ------------------------------------------------------------------------------------

B64 = ["aGVsbG8=", "", "aGVsbG8", "!!!", "====", "AA==", "Y3R4", "Zm9v\n", "a" * 4 * 300]
STATIC_POOL = [
    *B64, "vault:v1:", "vault:v0:AAAA", "vault:v99999999999999999999:AAAA",
    "vault:v1:AAAA", "vault:vx:AAAA", "vault:v-1:AA==", "vault:v1", "vault:v2:" + "A" * 40,
    "aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "ed25519", "ecdsa-p256", "ecdsa-p384",
    "ecdsa-p521", "rsa-2048", "rsa-3072", "hmac", "managed_key", "xchacha20", "bogus",
    "sha2-256", "sha2-512", "sha3-256", "sha1", "none", "pss", "pkcs1v15", "asn1", "jws",
    "hex", "base64", "platform", "seal", "all", "plaintext", "wrapped", "SHA256", "SHA1",
    "transit", "kv", "kv-v2", "generic", "system", "token", "cubbyhole", "plugin",
    "default", "root", "response-wrapping", LIMITED_POLICY + "-other",
    "1h", "0", "-1s", "768h", "1.5h", "99999999999999h", "1µs", "1d", "true", "false", "t",
    'path "*" { capabilities = ["sudo"] }', 'path "a" {', "path", "{{identity.entity.id}}",
    "hvs.AAAA", "s.AAAA", "*", "a/b", "../x", "\x00", "\n", "%00", "é", "😀",
    # digits to str.isdigit() that int() refuses ("²") or takes ("١")
    "\u00b2", "\u0661", "v\u00b2", "vault:v\u00b2:AAAA", "vault:v\u0661:AAAA",
    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
]


def runtime(*names: str) -> st.SearchStrategy[str]:
    """A value the fixture made on the server (looked up when drawn)."""
    return st.sampled_from(names).map(lambda n: RUNTIME[n])


runtime_strings = runtime(*RUNTIME_NAMES)
pool_strings = st.one_of(st.sampled_from(STATIC_POOL), runtime_strings)
json_strings = st.one_of(pool_strings, st.text(max_size=30))
big_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                     10**30, 10**400]),
)
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([1e308, -1e308, 1e19, 5e-324, 0.5, -0.0, 1.5, 1e15]))
json_scalars = st.one_of(st.none(), st.booleans(), big_ints, floats, json_strings)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(json_strings, inner, max_size=5)),
    max_leaves=25,
)

BY_TYPE: dict[FieldType, st.SearchStrategy[Any]] = {
    FieldType.STRING: weighted((4, pool_strings), (1, st.text(max_size=30)), (1, json_values)),
    FieldType.BOOL: st.one_of(st.booleans(), st.sampled_from(
        ["true", "false", "t", "1", "0", "yes", "", "TRUE", 0, 1, 2, -1, 0.5]), json_values),
    FieldType.INT: st.one_of(big_ints, floats, st.sampled_from(
        ["10", " 10 ", "1e3", "-5", "0x10", "abc", "", "99999999999999999999"]), json_values),
    FieldType.DURATION: st.one_of(big_ints, floats, st.sampled_from([
        "1h", "0", "-1s", "768h", "1.5h", "99999999999999h", "1µs", "1ns", "1d", "s", "-", "+1m",
        "2562047h47m16.854775807s", "2562048h", "1e3", "9223372036854775807",
        "99999999999999999999", " 5 "]), json_values),
    FieldType.SLICE: st.one_of(st.lists(st.one_of(json_scalars, pool_strings), max_size=5),
                               pool_strings, json_values),
    FieldType.MAP: st.one_of(st.dictionaries(json_strings, json_scalars, max_size=4),
                             json_values),
    FieldType.ANY: json_values,
}

garbage_tokens = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + ".-_", min_size=1, max_size=40),
    st.sampled_from(["hvs.", "s.", "root", "null", "undefined", LIMITED_TOKEN + "x",
                     ROOT_TOKEN.upper(), " ", "a" * 8000, "\u00e9", "\x7f", "é" * 3]),
)

# Plausible values by field name, so that requests get past validation into the handlers.
b64s = st.sampled_from(B64)
durations = st.sampled_from(["1h", "0", "30s", "768h", "-1s", "1.5h", 3600, 0, -1, "10m",
                             "system", "", 10**20, 1e308, "9" * 400 + "h", "2562048h",
                             "2562047h47m16.854775807s", "99999999999999999999", 2**63])
small_ints = st.sampled_from([0, 1, 2, 3, -1, 99, "1", "latest"])
sizes = st.sampled_from([0, 1, 16, 32, 64, 128, 256, 512, 1024, 65536, 2**20, 2**31, -1, 10**9])
KEY_TYPES = ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "ed25519", "ecdsa-p256",
             "ecdsa-p384", "ecdsa-p521", "rsa-2048", "hmac", "bogus", "AES256-GCM96"]
policy_names = st.sampled_from(["default", "root", "nope", LIMITED_POLICY + "-other"])
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["plaintext", "input", "nonce", "associated_data"], b64s),
    "context": st.sampled_from(["", "Y3R4", "AA==", "!!"]),
    "ciphertext": st.one_of(runtime("canary_ciphertext", "ciphertext", "derived_ciphertext"),
                            st.sampled_from(["vault:v1:AAAA", "vault:v2:" + "A" * 40, ""])),
    "signature": st.one_of(runtime("signature"), st.sampled_from(["vault:v1:AAAA", "x"])),
    "hmac": st.one_of(runtime("hmac"), st.sampled_from(["vault:v1:AAAA", "x"])),
    "type": st.sampled_from(KEY_TYPES + ["transit", "kv", "generic", "file", "encryption-key"]),
    **dict.fromkeys(["algorithm", "hash_algorithm", "urlalgorithm"], st.sampled_from(
        ["sha2-256", "sha2-512", "sha3-256", "sha1", "none", "bogus"])),
    "signature_algorithm": st.sampled_from(["pss", "pkcs1v15", "bogus"]),
    "marshaling_algorithm": st.sampled_from(["asn1", "jws", "bogus"]),
    "salt_length": st.sampled_from(["auto", "hash", "0", 32, -2, 10**6]),
    "format": st.sampled_from(["hex", "base64", "bogus"]),
    **dict.fromkeys(["key_version", "min_decryption_version", "min_encryption_version",
                     "min_available_version", "version", "depth"], small_ints),
    **dict.fromkeys(["bits", "bytes", "size", "key_size", "num_uses", "max_versions"], sizes),
    **dict.fromkeys(["padding_scheme", "encrypt_padding_scheme", "decrypt_padding_scheme"],
                    st.sampled_from(["oaep", "pkcs1v15", "bogus"])),
    "backup": st.one_of(runtime("backup"), b64s),
    "public_key": st.one_of(runtime("rsa_public_key", "wrapping_key"), pool_strings),
    **dict.fromkeys(["hash_function", "hash"], st.sampled_from(["SHA256", "sha1", "SHA512", "x"])),
    **dict.fromkeys(["policy", "rules"], st.sampled_from([
        'path "transit/*" { capabilities = ["read"] }', 'path "a" {', "",
        'path "*" { capabilities = ["sudo", "deny"] }', "name = 1", '{"path": {"a": {}}}'])),
    **dict.fromkeys(["policies", "allowed_policies", "disallowed_policies"],
                    st.lists(policy_names, max_size=3) | policy_names),
    "token": st.one_of(runtime("spare_token", "wrapping_token"), garbage_tokens),
    "accessor": st.one_of(runtime("spare_accessor"), garbage_tokens),
    **dict.fromkeys(["path", "from", "to"], st.sampled_from(
        ["transit/", "secret/data/x", "new-mount", "x/y", "sys/", "", "/"])),
    "paths": st.lists(st.sampled_from(["transit/keys/prod", "sys/seal", "secret/data/denied"]),
                      max_size=3),
    "data": st.dictionaries(json_strings, json_scalars, max_size=3),
    "options": st.sampled_from([{}, {"cas": 0}, {"cas": 1}, {"version": "2"}, {"cas": "x"}]),
    "versions": st.lists(small_ints, max_size=3),
    "custom_metadata": st.dictionaries(json_strings, json_strings, max_size=3),
    **dict.fromkeys(["increment", "ttl", "lease", "period", "explicit_max_ttl",
                     "auto_rotate_period", "delete_version_after", "default_lease_ttl",
                     "max_lease_ttl", "token_period", "token_explicit_max_ttl"], durations),
    "config": st.fixed_dictionaries({}, optional={
        "default_lease_ttl": durations, "max_lease_ttl": durations,
        "force_no_cache": st.sampled_from([True, "x", 1]),
        "listing_visibility": st.sampled_from(["", "unauth", "hidden", "x"]),
        "audit_non_hmac_request_keys": st.sampled_from([["a"], "a,b", [1], {}]),
        "passthrough_request_headers": st.sampled_from([["X-A"], "a", [None]])}),
    "partial_failure_response_code": st.sampled_from(
        [200, 299, 400, 500, 503, 0, 1, 100, 204, 600, 999, -1]),
    "source": st.sampled_from(["platform", "seal", "all", "bogus"]),
    "reference": json_strings,
    "cas_required": st.booleans(),
    "deletion_allowed": st.booleans(),
}
batch_items = st.one_of(
    st.fixed_dictionaries({}, optional={k: weighted((3, FIELD_VALUES[k]), (1, json_scalars))
                                        for k in ["plaintext", "ciphertext", "context",
                                                  "nonce", "input", "hmac", "signature",
                                                  "reference", "key_version",
                                                  "associated_data", "padding_scheme"]}),
    json_values,
)
batch_inputs = st.one_of(
    st.lists(batch_items, max_size=6),
    st.sampled_from([10_001, 2000]).map(lambda n: [{"plaintext": "aGVsbG8="}] * n),
    json_values,
)


@dataclass(frozen=True)
class Body:
    """Bytes to send, and a Python expression that builds them (for the reproducer)."""

    data: bytes
    expr: str

    @classmethod
    def of(cls, data: bytes) -> Body:
        return cls(data, repr(data))

    def __repr__(self) -> str:
        expr = self.expr if len(self.expr) <= 3000 else self.expr[:3000] + "...(cut)"
        return f"Body.of({expr})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis' printer
        p.text(repr(self))


def _dumps(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False).encode(
        "utf-8", "surrogatepass")


def json_body(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Body]:
    def build(v: Any, ascii_only: bool) -> Body:
        data = _dumps(v, ascii_only)
        if len(data) <= 4096:
            return Body.of(data)
        return Body(data, f"json.dumps({v!r}, ensure_ascii={ascii_only}).encode()")
    return st.builds(build, value, st.booleans())


def fields_body(t: Template) -> st.SearchStrategy[Body]:
    """A JSON object whose keys are (mostly) the route's own fields, values by field type."""
    entries = []
    for fname, f in t.fields.items():
        values = (batch_inputs if fname == "batch_input" else
                  weighted((3, FIELD_VALUES[fname]), (1, BY_TYPE[f.type]))
                  if fname in FIELD_VALUES else BY_TYPE[f.type])
        entries.append(st.tuples(st.just(fname), values))
    if not entries:
        return json_body(st.dictionaries(json_strings, json_values, max_size=3))
    return json_body(st.builds(
        lambda chosen, extra: {**extra, **dict(chosen)},
        st.lists(st.one_of(*entries), max_size=6),
        st.dictionaries(json_strings, json_values, max_size=2),
    ))


def _special(name: str, expr: str) -> Body:
    data = eval(expr, {"json": json})  # the expression is the reproducer: keep them in step
    assert isinstance(data, bytes), name
    return Body(data, expr)


MB = 1024 * 1024
SPECIAL_BODIES = [_special(*x) for x in [
    ("depth 300", "b'[' * 300 + b']' * 300"),
    ("depth 301", "b'[' * 301 + b']' * 301"),
    ("depth 100k", "b'[' * 100000 + b']' * 100000"),
    ("object depth", "b'{\"a\":' * 299 + b'1' + b'}' * 299"),
    ("open brackets", "b'{\"a\":[' * 50000"),
    ("string at limit", f"b'{{\"plaintext\":\"' + b'A' * {MB} + b'\"}}'"),
    ("string over limit", f"b'{{\"plaintext\":\"' + b'A' * {MB + 1} + b'\"}}'"),
    ("escapes", "b'{\"input\":\"' + b'\\\\u0000' * 20000 + b'\"}'"),
    ("many entries", "b'{' + b','.join(b'\"k%d\":1' % i for i in range(10001)) + b'}'"),
    ("many elements", "b'{\"batch_input\":[' + b','.join([b'1'] * 10001) + b']}'"),
    ("big batch", "b'{\"batch_input\":[' + b','.join([b'{\"plaintext\":\"aGVsbG8=\"}'] * 9000) + b']}'"),
    ("batch of objects", "b'{\"batch_input\":[' + b','.join([b'{}'] * 10000) + b']}'"),
    ("long key", f"b'{{\"' + b'k' * {MB + 1} + b'\":1}}'"),
    ("big number", "b'{\"bits\":' + b'9' * 5000 + b'}'"),
]] + [Body.of(b) for b in [
    b"not json", b"{", b"}", b"[]", b"[1]", b"1", b'"s"', b"true", b"null", b"\x00", b"\xff\xfe",
    b"\xef\xbb\xbf{}", b"{}{}", b'{"a":1e400}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-0}',
    b'{"a":1,"a":2}', b'{"a":"\\ud800"}', b'{"a":"\xff"}', b"{'a':1}", b'{"a":1,}', b"  ",
    b"plaintext=aGVsbG8=&x=1", b'{"data":{"a":1}}', b'{"data":null}', b'{"data":[1]}',
    b'{"batch_input":[]}', b'{"batch_input":{}}', b'{"batch_input":[null]}',
    b'{"batch_input":[{"plaintext":"aGVsbG8="},{"plaintext":1}]}',
    b'{"batch_input":[{"plaintext":"aGVsbG8="},{"plaintext":"!"}],'
    b'"partial_failure_response_code":299}',
    b'{"plaintext":"aGVsbG8=","partial_failure_response_code":500}',
    b'{"policy":"path \\"*\\" {capabilities=[\\"read\\"]}"}', b'{"policy":"' + b"{" * 5000 + b'"}',
    b'{"policy":"path \\"a\\" {' + b'path \\"b\\" {' * 200 + b'"}',
]]
special_bodies = st.sampled_from(SPECIAL_BODIES)

# -- headers -----------------------------------------------------------------------------------

Header = tuple[bytes, bytes]


def _latin1(s: str) -> bytes:
    return s.encode("utf-8") if any(ord(c) > 0xFF for c in s) else s.encode("latin-1")


def token_headers() -> st.SearchStrategy[list[Header]]:
    def one(name: bytes) -> Callable[[str], list[Header]]:
        return lambda tok: [(name, _latin1(tok))]
    tok = st.one_of(st.just(ROOT_TOKEN), st.just(LIMITED_TOKEN), garbage_tokens)
    root = st.just([(b"X-Vault-Token", ROOT_TOKEN.encode())])
    limited = st.just([(b"X-Vault-Token", LIMITED_TOKEN.encode())])
    others = st.one_of(
        st.just([(b"x-vault-token", LIMITED_TOKEN.encode())]),
        garbage_tokens.map(one(b"X-Vault-Token")),
        st.lists(tok, min_size=2, max_size=3).map(
            lambda ts: [(b"X-Vault-Token", _latin1(t)) for t in ts]),
        tok.map(lambda t: [(b"Authorization", b"Bearer " + _latin1(t))]),
        tok.map(lambda t: [(b"X-Vault-Token", b""), (b"Authorization", b"bearer " + _latin1(t))]),
        st.tuples(tok, tok).map(lambda p: [(b"Authorization", b"Bearer " + _latin1(p[0])),
                                           (b"X-Vault-Token", _latin1(p[1]))]),
    )
    # a third root, a third limited, a third anything else
    return weighted((6, root), (5, limited), (1, st.just([])), (4, others)).map(list)


printable_ascii = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _hv(values: list[str]) -> st.SearchStrategy[bytes]:
    """A header value: a meaningful one, printable junk, or (rarely) anything at all."""
    return weighted((6, st.sampled_from(values)), (2, st.text(printable_ascii, max_size=20)),
                    (1, st.text(max_size=20))).map(_latin1)


other_headers = weighted((2, st.just([])), (1, st.lists(st.one_of(
    st.tuples(st.just(b"Content-Type"), _hv([
        "application/json", "application/merge-patch+json", "application/merge-patch+json; x",
        "text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
        ""])),
    st.tuples(st.just(b"X-Vault-Wrap-TTL"), _hv([
        "30s", "1h", "0", "-1", "abc", "99999999999999999999h", "1e309", "", "300", "1ns",
        "9" * 400 + "h", "2562048h", "99999999999999999999"])),
    st.tuples(st.just(b"X-Vault-Index"), _hv(["", "garbage", "v1:AAAA", "a:b:c", "v1:" + "A" * 200])),
    st.tuples(st.just(b"X-Vault-Request"), _hv(["true", "false"])),
    st.tuples(st.just(b"X-Vault-Forward"), _hv(["active-node"])),
    st.tuples(st.just(b"X-Vault-Inconsistent"), _hv(["forward-active-node", "fail"])),
    st.tuples(st.just(b"X-Vault-Policy-Override"), _hv(["true"])),
    st.tuples(st.just(b"X-Vault-Namespace"), _hv(["ns1", "root", ""])),
    st.tuples(st.just(b"X-Vault-MFA"), _hv(["x"])),
    st.tuples(st.just(b"Expect"), st.just(b"100-continue")),
    st.tuples(st.just(b"Accept-Encoding"), st.just(b"gzip")),
    st.tuples(st.sampled_from([b"X-Forwarded-For", b"X-Real-Ip", b"Origin"]), _hv(["1.2.3.4"])),
    st.tuples(st.sampled_from([b"X-Vault-Token-Extra", b"X-Vault-", b"x-vault-\xff"]),
              _hv(["v"])),
), max_size=3)))

# -- requests ----------------------------------------------------------------------------------

OP_METHODS = {"read": ["GET", "GET", "GET", "HEAD"], "update": ["POST", "PUT"], "create": ["POST", "PUT"],
              "delete": ["DELETE"], "list": ["LIST", "GET?list"], "patch": ["PATCH"]}
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "LIST", "HEAD", "OPTIONS"]
PREFIXES = ["/v1/"] * 100 + ["", "/", "/v1", "//v1/", "/V1/", "/v1/./", "/v1/../v1/", "/v2/",
                            "/ui/", "http://127.0.0.1/v1/", "/v1//", "/%76%31/"]
QUERIES = [""] * 60 + ["?list=true", "?list=1", "?list=bogus", "?list=", "?list=true&list=0",
                       "?version=1", "?context=Y3R4", "?x=%0A", "?help=1", "?warning=1", "?",
                       "?%zz", "?list=%00", "?code=200&standbycode=200", "?sealedcode=999"]


def _mutate_path(path: str, how: int, where: int) -> str:
    """Reshape a path the way an attacker would: dot segments, empty segments, encodings."""
    slashes = [i for i, c in enumerate(path) if c == "/"]
    letters = [i for i, c in enumerate(path) if c.isalpha() and c.isascii()]
    if how == 1 and slashes:
        i = slashes[where % len(slashes)]
        return path[:i] + "//" + path[i + 1:]
    if how == 2 and slashes:
        i = slashes[where % len(slashes)]
        return path[:i] + "/./" + path[i + 1:]
    if how == 3 and slashes:
        i = slashes[where % len(slashes)]
        return path[:i] + "/x/../" + path[i + 1:]
    if how == 4 and slashes:
        i = slashes[where % len(slashes)]
        return path[:i] + "%2F" + path[i + 1:]
    if how == 5 and letters:
        i = letters[where % len(letters)]
        return path[:i] + pct(path[i]) + path[i + 1:]
    if how == 6:
        return path + "/"
    if how == 7:
        return path + "/."
    if how == 8 and letters:
        i = letters[where % len(letters)]
        return path[:i] + path[i].swapcase() + path[i + 1:]
    if how == 9:
        return quote(path, safe="")  # every "/" encoded too
    return path


@dataclass(frozen=True)
class Case:
    """One request, exactly as it goes on the wire. `Case(...).send(port)` replays it."""

    method: str
    target: str  # the request-target; non-ASCII characters go out as raw UTF-8
    headers: tuple[Header, ...]
    body: Body
    chunked: bool = False
    label: str = ""  # the route template it came from (for statistics only)

    def wire(self) -> bytes:
        lines = [self.method.encode("utf-8") + b" " + self.target.encode("utf-8")
                 + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        lines += [k + b": " + v for k, v in self.headers]
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked")
            data = self.body.data
            payload = (b"%x\r\n" % len(data) + data + b"\r\n" if data else b"") + b"0\r\n\r\n"
        else:
            lines.append(b"Content-Length: %d" % len(self.body.data))
            payload = self.body.data
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload

    def send(self, port: int) -> wire.RawResponse:
        return wire.exchange(port, self.wire())

    def __repr__(self) -> str:
        target = self.target if len(self.target) <= 300 else None
        t = repr(target) if target is not None else (
            f"{self.target[:100]!r} + ... ({len(self.target)} chars)")
        return (f"Case(method={self.method!r}, target={t}, headers={self.headers!r}, "
                f"body={self.body!r}, chunked={self.chunked}, label={self.label!r})")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis' printer
        p.text(repr(self))


# How often each engine's routes are drawn, relative to each other.
ENGINE_WEIGHTS = {"transit": 8, "kv-v2": 4, "kv-v1": 2, "system": 4, "token": 3, "identity": 2,
                  "status": 1, "none": 1}


@st.composite
def cases(draw: st.DrawFn, templates: list[Template], methods: list[str] | None = None,
          tokens: st.SearchStrategy[list[Header]] | None = None) -> Case:
    by_engine: dict[str, list[Template]] = {}
    for tmpl in templates:
        by_engine.setdefault(tmpl.engine, []).append(tmpl)
    engine_pool = [e for e in by_engine for _ in range(ENGINE_WEIGHTS.get(e, 1))]
    t = draw(st.sampled_from(by_engine[draw(st.sampled_from(engine_pool))]))
    inner = "".join(p if isinstance(p, str) else draw(PARAMS[p.name]) for p in t.parts)
    path = t.mount + inner
    path = _mutate_path(path, draw(st.sampled_from([0] * 27 + list(range(1, 10)))),
                        draw(st.integers(0, 64)))
    prefix = draw(st.sampled_from(PREFIXES))
    query = draw(st.sampled_from(QUERIES))
    own = [m for op in t.operations for m in OP_METHODS.get(op, [])] or ["GET"]
    method = draw(st.sampled_from(methods)) if methods else draw(weighted(
        (12, st.sampled_from(own)), (4, st.sampled_from(ALL_METHODS)),
        (1, st.sampled_from(["TRACE", "FOO", "get", "CONNECT", "PROPFIND", "LIST "])),
    ))
    if method == "GET?list":
        method, query = "GET", "?list=true"
    headers = draw(tokens if tokens is not None else token_headers()) + draw(other_headers)
    if method == "PATCH" and draw(st.booleans()):
        headers.append((b"Content-Type", b"application/merge-patch+json"))
    body = draw(weighted(
        (2, st.just(Body.of(b""))), (10, fields_body(t)), (1, json_body(json_values)),
        (1, special_bodies),
    )) if method not in ("GET", "HEAD", "OPTIONS") or draw(st.integers(0, 9)) == 0 else (
        Body.of(b""))
    chunked = draw(st.integers(0, 15)) == 0
    case = Case(method, prefix + path + query, tuple(headers), body, chunked, t.label())
    return _keep_fixtures(case)


# -- the oracle --------------------------------------------------------------------------------

GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
OPEN_PATHS = set(STATUS_HANDLERS)  # unauthenticated status endpoints (trailing "/" ignored)


@dataclass(frozen=True)
class Seen:
    """What the server makes of a request (the same parser, uvicorn's httptools)."""

    parsed: bool  # False: the HTTP layer refuses it before our application sees it
    rel: str | None  # the percent-decoded path after "/v1/" (None: not an API path)
    printable: bool
    is_list: bool
    token: str  # the effective token: the first X-Vault-Token, else the first Bearer


def seen(case: Case) -> Seen:
    try:
        url = httptools.parse_url(case.target.encode("utf-8"))
        raw_path = (url.path or b"").decode("ascii")
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        return Seen(False, None, True, False, "")
    path = unquote(raw_path) if "%" in raw_path else raw_path
    rel = path[4:] if path.startswith("/v1/") else None
    query = (url.query or b"").decode("latin-1")
    is_list = case.method == "LIST"
    if case.method == "GET":
        first = dict(reversed(parse_qsl(query, keep_blank_values=True)))
        is_list = first.get("list", "") in GO_TRUE
    token = bearer = None
    for k, v in case.headers:
        value = v.strip(b" \t").decode("latin-1")
        if k.lower() == b"x-vault-token" and token is None:
            token = value
        elif k.lower() == b"authorization" and bearer is None and (
                value[:7].lower() == "bearer "):
            bearer = value[7:].strip()
    return Seen(True, rel, path.isprintable(), is_list, token or bearer or "")


def canonical(rel: str) -> str:
    """`rel` with empty and dot segments resolved: a superset view, used to keep destructive
    requests away from root (the server itself routes none of these spellings)."""
    out: list[str] = []
    for seg in rel.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "/".join(out)


DESTRUCTIVE_EXACT = {"sys/seal", "sys/step-down", "sys/remount", "auth/token/revoke-self",
                     "secret/config", f"sys/policies/acl/{LIMITED_POLICY}",
                     f"sys/policy/{LIMITED_POLICY}"}
DESTRUCTIVE_PREFIX = ("sys/audit/", "sys/quotas/", "secret/data/denied", "secret/metadata/denied",
                      "secret/delete/denied", "secret/destroy/denied", "kv1/denied",
                      # the fixtures' tokens have leases (auth/token/create/...)
                      "sys/leases/revoke-prefix/", "sys/leases/revoke-force/",
                      "sys/revoke-prefix/", "sys/revoke-force/",
                      *(f"sys/mounts/{m}" for m in FIXTURE_MOUNTS))


def _keep_fixtures(case: Case) -> Case:
    """Root must not seal the server, revoke itself, unmount or remount a fixture mount,
    rewrite the limited token's policy, enable audit devices (they write files), set rate
    limits (every later request would be a 429), or touch the canaries: such a request is
    sent with the limited token instead (which the policy must refuse). Only writes count;
    reads of these paths stay with root."""
    s = seen(case)
    if s.token != ROOT_TOKEN or s.rel is None or case.method in ("GET", "HEAD", "OPTIONS"):
        return case
    c = canonical(s.rel)
    folded = "/".join(seg.strip() for seg in c.split("/")).lower()  # policy names fold so
    if not any(x in DESTRUCTIVE_EXACT or x.startswith(DESTRUCTIVE_PREFIX) for x in (c, folded)):
        return case
    headers = tuple(h for h in case.headers if h[0].lower() not in (b"x-vault-token",
                                                                     b"authorization"))
    return Case(case.method, case.target, ((b"X-Vault-Token", LIMITED_TOKEN.encode()),
                                           *headers), case.body, case.chunked, case.label)


UI_MOUNTS = "sys/internal/ui/mounts"


def limited_denied(rel: str, is_list: bool) -> bool:
    """Whether the limited token's policy denies `rel` (conftest.LIMITED_HCL)."""
    if rel.rstrip("/") in OPEN_PATHS or rel == "sys/wrapping/lookup":
        return False
    if rel.rstrip("/") == UI_MOUNTS:
        return False  # spec operations-api §9: lists the mounts the token can use at all
    if rel.startswith(UI_MOUNTS + "/"):  # one mount's entry: if the token can use that mount
        return rel[len(UI_MOUNTS) + 1:].strip("/").split("/")[0] + "/" not in ALLOWED_PREFIXES
    p = rel
    if p + "/" in ALLOWED_PREFIXES:
        p += "/"  # a bare mount name routes to the mount's root
    if is_list and not p.endswith("/"):
        p += "/"
    if not p.startswith(ALLOWED_PREFIXES):
        return True
    return p in DENY_EXACT or p.startswith(DENY_GLOB)


# 500s Vault gives for the same input (spec transit-api §1.4: a plain handler error is a 500
# with Go's multierror text). Each entry: the mount-relative route, the message, the spec
# section that documents it. Anything else at 500 is a bug.
NAME = r"[^/]+"
LEGIT_500: list[tuple[str, str, str]] = [
    (rf"transit/keys/{NAME}",
     r"key derivation and convergent encryption not supported for keys of type \S+"
     r"|convergent encryption not supported for keys of type \S+"
     r"|invalid key size for HMAC key, must be between 32 and 512 bytes",
     "transit-api §4.1: errors from key creation itself are 500"),
    (rf"transit/keys/{NAME}/rotate", r"imported key \S+ does not allow rotation within Vault",
     "transit-api §4.6"),
    (rf"transit/keys/{NAME}/import(_version)?",
     r"the import path cannot be used with an existing key; use import-version to rotate an "
     r"existing imported key|import cannot be used on keys with convergent encryption enabled"
     r"|import_version cannot be used on keys with convergent encryption enabled"
     r"|allow_rotation must be set to true if auto-rotation is enabled"
     r"|provided ciphertext is too short|expected ephemeral AES key to be 256-bit"
     r"|error importing key: .*|provided type does not support public_key import"
     r"|provided type does not support importing key versions"
     r"|no key found with name \S+; to import a new key, use the import/ endpoint"
     r"|the import_version endpoint can only be used with an imported key"
     r"|illegal base64 data at input byte \d+|crypto/rsa: decryption error"
     r"|failed to unwrap the target key: kwp: unwrap failed",
     "transit-api §4.20: BYOK import errors are mostly plain (500)"),
    (rf"transit/byok-export/{NAME}/{NAME}(/.*)?",
     r"no such destination key to export to|no such source key for export"
     r"|unknown hash function: .*|unsupported key type in use; must be a rsa key"
     r"|key wrapping \(requring message signing\) is not supported for key type \S+",
     "transit-api §4.20: byok-export's checks are Vault's plain errors (path_byok.go)"),
    (rf"transit/backup/{NAME}",
     r'exporting is disallowed on the policy|plaintext backup is disallowed on the policy'
     r'|key "[^"]*" not found', "transit-api §4.18"),
    (r"transit/restore(/.*)?",
     r'key "[^"]*" already exists|key names cannot be paths'
     r"|illegal base64 data at input byte \d+|failed to restore the policy: .*",
     "transit-api §4.19: an existing key without force, undecodable base64 or JSON"),
    (rf"transit/(encrypt|decrypt|rewrap|datakey/{NAME})/{NAME}",
     r"unable to get associated_data/additional_data from factory\[0\]: .*"
     r"|failed to parse batch input: .*"
     r"|failed to RSA (en|de)crypt the (plaintext|ciphertext): crypto/rsa: .*",
     "transit-api §5 (a malformed batch item), §3.1/§4.9 (an RSA failure is internal) and "
     "Vault's lazy AssocDataFactory decoding"),
    (rf"transit/(hmac|sign|verify)/{NAME}(/.*)?", r"failed to parse batch input: .*",
     "transit-api §5: a malformed batch item fails the whole request with a 500"),
    (rf"transit/export/{NAME}/{NAME}(/.*)?",
     r"unknown key type \S+ for export type \S+"
     r"|selected key version does not have a certificate chain.*"
     r"|failed to derive key to return public component: .*",
     "Vault's getExportKey returns these as plain errors (path_export.go); spec §4.17 lists "
     "only the 400s, which are checked first"),
    (rf"transit/sign/{NAME}(/.*)?",
     r"requested version for signing .*|requested salt length .*|crypto/rsa: .*",
     "Vault's pathSignWrite returns SignWithOptions' error bare for a single item (sign.py)"),
    (r"sys/leases", r"invalid 'limit' provided: .*|limit must be 'none' or a positive integer",
     "auth-api §7.2 (probed): processLimit's errors are plain (500)"),
    (r"sys/capabilities(-self)?", r"no token found",
     "Vault's handleCapabilities returns fmt.Errorf(\"no token found\"), a plain error"),
    (rf"auth/userpass/login/{NAME}", r"missing password",
     "auth-api §1.6, §3: a login handler's plain error is a 500, unwrapped"),
    (rf"auth/userpass/users/{NAME}/(password|policies)", r"username does not exist",
     "auth-api §3: an unknown user's password or policies update is a 500w"),
    (r"auth/approle/login",
     r"missing role_id|Field validation failed: .*|failed to verify subset relationship .*",
     "auth-api §1.6, §2.5: the look-ahead's and the login's plain errors are 500, unwrapped"),
    (rf"auth/approle/role/{NAME}(/[a-z-]+)?",
     r"at least one constraint should be enabled on the role|role_id already in use"
     r"|failed to validate (token )?CIDR blocks: .*|failed to verify subset relationship .*"
     r"|failed to store secret_id: SecretID is already registered"
     r'|role "[^"]*" does not exist'
     r'|failed to find accessor entry for secret_id_accessor: .*',
     "auth-api §2.1-2.4: setRoleEntry's and the secret-ID paths' plain errors (500w)"),
    (rf"auth/approle/role/{NAME}/secret-id(-accessor)?/(lookup|destroy)",
     r'role "[^"]*" does not exist|failed to find accessor entry for secret_id_accessor: .*',
     "auth-api §2.4: lookup and destroy of a missing role or accessor are plain errors"),
    # raw handlers (operations-api §0): their 500s are unwrapped `{"errors":["<msg>"]}`
    (r"sys/rekey(-recovery-key)?/init/?", r"invalid rekey seal configuration: .*",
     "operations-api §1.2 step 4: seal-config validation is a 500"),
    (r"sys/rekey(-recovery-key)?/update/?",
     r"failed to read root key: .*|failed to encrypt shares: .*",
     "operations-api §1.4: wrong shares at the threshold, a PGP key without encryption"),
]


def _multierror(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and len(body["errors"]) == 1:
        m = re.fullmatch(r"1 error occurred:\n\t\* (.*)\n\n", str(body["errors"][0]), re.S)
        if m:
            return m.group(1)
    return None


def _legit_5xx(case: Case, s: Seen, resp: wire.RawResponse, body: Any) -> bool:
    if s.rel is None:
        return False
    # The encrypt/decrypt batch status rules (spec transit-api §5): a partial failure answers
    # with the caller's partial_failure_response_code (1..599), or 500 when only internal
    # errors occurred; the body is then the success envelope with batch_results.
    if re.fullmatch(r"transit/(encrypt|decrypt)/[^/]+", s.rel) and isinstance(body, dict) and (
            isinstance((body.get("data") or {}).get("batch_results"), list)):
        return True
    msg = _multierror(body)
    if msg is None and isinstance(body, dict) and isinstance(body.get("errors"), list) and (
            len(body["errors"]) == 1 and set(body) == {"errors"}):
        msg = str(body["errors"][0])  # a raw handler's (or the sdk's) unwrapped error
    if msg is None:
        return False
    return any(re.fullmatch(route, s.rel) and re.fullmatch(text, msg, re.S)
               for route, text, _ in LEGIT_500)


def _batch_override(case: Case, s: Seen) -> int | None:
    """The partial_failure_response_code an encrypt/decrypt batch asked for (spec §5)."""
    if s.rel is None or not re.fullmatch(r"transit/(encrypt|decrypt)/[^/]+", s.rel):
        return None
    try:
        value = json.loads(case.body.data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    code = value.get("partial_failure_response_code") if isinstance(value, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


PLAIN_400 = b"Invalid HTTP request received."  # uvicorn's answer to an unparseable request
TRACEBACK = "Traceback (most recent call last)"
# An error logged by the server (ours: "[ERROR]"; uvicorn's: "ERROR:"), or a traceback.
LOG_PROBLEM = re.compile(r"\[(?:ERROR|CRITICAL)\]|^(?:ERROR|CRITICAL):|" + re.escape(TRACEBACK),
                         re.M)


def problems(case: Case, resp: wire.RawResponse, log: str) -> list[str]:
    s = seen(case)
    out: list[str] = []
    if resp.error:
        return [f"no proper answer: {resp.error}"]
    status = resp.status
    ctype = resp.header("content-type") or ""
    body: Any = None
    if resp.body and ctype.startswith("application/json"):
        try:
            body = json.loads(resp.body)
        except ValueError:
            out.append("a JSON content type with a body that is not JSON")
    upgrade = any(k.lower() == b"upgrade" for k, _ in case.headers)
    override = _batch_override(case, s)

    # never a 5xx (but Vault's own 500s), never a traceback
    if status >= 500 and status != override and not _legit_5xx(case, s, resp, body):
        out.append(f"status {status}")
    if TRACEBACK.encode() in resp.body:
        out.append("a traceback in the body")
    m = LOG_PROBLEM.search(log)
    if m:
        out.append(f"server log: {m.group(0)!r}")

    # Vault's error body
    if status >= 400 and status != override and case.method != "HEAD" and not upgrade:
        if body is None and resp.body != PLAIN_400:
            out.append("an error without a JSON body")
        elif body is not None:
            vault_error = (isinstance(body, dict) and isinstance(body.get("errors"), list)
                           and all(isinstance(e, str) for e in body["errors"]))
            kv_invalid_path = (status == 404 and isinstance(body, dict) and any(
                "Invalid path for a versioned K/V" in w for w in body.get("warnings") or []))
            # Vault's KV v2 read of a deleted or destroyed version: 404 with the envelope
            kv_deleted = (status == 404 and isinstance(body, dict)
                          and isinstance(body.get("data"), dict)
                          and body["data"].get("data") is None and "metadata" in body["data"])
            batch_envelope = _legit_5xx(case, s, resp, body) and "errors" not in body
            if not (vault_error or kv_invalid_path or kv_deleted or batch_envelope):
                out.append("an error body without an errors list")
    if case.method == "HEAD" and resp.body and resp.body != PLAIN_400:
        out.append("a body on a HEAD answer")
    if status == 204 and resp.body:
        out.append("a body on a 204")

    # refusals
    if s.parsed and not s.printable and not upgrade and status != 400:
        out.append("a non-printable character in the path was not refused with 400")
    ok = 200 <= status < 300
    if ok and s.rel is not None:
        if s.token == LIMITED_TOKEN and limited_denied(s.rel, s.is_list):
            out.append(f"2xx for the limited token on a denied path {s.rel!r}")
        if s.token not in (LIMITED_TOKEN, ROOT_TOKEN) and (
                s.rel.rstrip("/") not in OPEN_PATHS and s.rel != "sys/wrapping/lookup"
                and not (s.token == "" and s.rel.rstrip("/") == UI_MOUNTS)):
            out.append(f"2xx without a valid token on {s.rel!r}")
        if s.rel.rstrip("/") == UI_MOUNTS and s.token != ROOT_TOKEN and isinstance(body, dict):
            data = body.get("data") or {}
            shown = {**(data.get("secret") or {}), **(data.get("auth") or {})}
            if s.token == LIMITED_TOKEN and not set(shown) <= set(ALLOWED_PREFIXES):
                out.append(f"{UI_MOUNTS} shows the limited token mounts it cannot use: "
                           f"{sorted(shown)}")
            if s.token == "" and any(set(v) - {"description", "options", "type"}
                                     for v in shown.values()):
                # no token: only mounts tuned listing_visibility=unauth, in their short form
                out.append(f"{UI_MOUNTS} shows full mount entries without a token")
    if s.token != ROOT_TOKEN and (CANARY.encode() in resp.body
                                  or CANARY_B64.encode() in resp.body):
        out.append("the canary secret leaked to a caller other than root")
    return out


def run_case(env: FuzzEnv, case: Case) -> wire.RawResponse:
    """Send one case and assert every property; a failure names the request, the answer and
    the server log, and Hypothesis prints the (shrunk) `Case` as the reproducer."""
    resp = case.send(env.srv.port)
    log = env.new_log()
    event(f"status {resp.status // 100}xx")
    if os.environ.get("TRANSIT_FUZZ_EVENTS"):  # --hypothesis-show-statistics: what came back
        event(f"{resp.status} {resp.body[:70]!r}")
    env.checks += 1
    found = problems(case, resp, log)
    if env.checks % 50 == 0 or found:
        rss = wire.rss_kib(env.pid)
        env.peak_rss_kib = max(env.peak_rss_kib, rss)
        if rss > RSS_LIMIT_KIB:
            found.append(f"server RSS {rss} KiB > {RSS_LIMIT_KIB} KiB")
    if env.srv.proc is not None and env.srv.proc.poll() is not None:
        found.append(f"the server exited with {env.srv.proc.returncode}")
    if found:
        note(f"request on the wire: {case.wire()[:3000]!r}")
        raise AssertionError(
            "; ".join(found) + f"\n  request: {case!r}\n  response: {resp.short()}"
            + (f"\n  server log:\n{log[-6000:]}" if log.strip() else ""))
    return resp


# -- the tests ---------------------------------------------------------------------------------


def test_route_tables_expand_to_templates() -> None:
    """The enumeration itself: every engine contributes, and every template is a path its
    route really serves (else the fuzzer would hammer 404s and prove little)."""
    engines = {t.engine for t in TEMPLATES}
    assert {"transit", "kv-v2", "kv-v1", "system", "token", "identity", "status"} <= engines
    sample = {"name": "k", "source": "k", "destination": "k", "role_name": "r", "path": "a/b",
              "rest": "x", "type": "encryption-key", "version": "1",
              "urlalgorithm": "sha2-256", "urlbytes": "32", "plaintext": "plaintext",
              "migration_id": "m", "id": "i"}
    assert check_templates(TEMPLATES, sample) == []
    assert len(ROUTED) >= 90, len(ROUTED)


def test_policy_baseline(fuzz_env: FuzzEnv) -> None:
    """Without this the properties below could pass on a policy that denies everything."""
    env = fuzz_env
    assert env.limited("POST", "transit/encrypt/prod", json={"plaintext": "aGVsbG8="}
                       ).status_code == 403
    assert env.limited("POST", "transit/encrypt/other", json={"plaintext": "aGVsbG8="}
                       ).status_code == 200
    assert env.limited("GET", "transit/keys/prod").status_code == 403
    assert env.limited("GET", "transit/keys/other").status_code == 200
    assert env.limited("GET", "secret/data/denied").status_code == 403
    assert env.limited("GET", "secret/data/public").status_code == 200
    assert env.limited("GET", "kv1/denied").status_code == 403
    assert env.limited("GET", "kv1/public").status_code == 200
    assert env.limited("GET", "sys/mounts").status_code == 403
    assert env.limited("GET", "auth/token/lookup-self").status_code == 403
    assert env.root("GET", "secret/data/denied").json()["data"]["data"] == {"canary": CANARY}
    for rel, is_list, denied in [("transit/keys/prod", False, True),
                                 ("transit/keys/other", False, False),
                                 ("secret/metadata/denied", True, False),
                                 ("secret/metadata/denied", False, True),
                                 ("sys/health/", False, False), ("auth/token/create", False, True),
                                 ("transit", False, False), ("nope/x", False, True)]:
        assert limited_denied(rel, is_list) is denied, rel


@pytest.mark.timeout(300 * SCALE)  # generation ~1 min; shrinking a failure takes longer
@settings(FUZZ, max_examples=2000 * SCALE)
@given(case=cases(TEMPLATES))
def test_fuzz_every_route(fuzz_env: FuzzEnv, case: Case) -> None:
    """Any method, path, headers and body on any route of any engine."""
    event(f"engine {case.label.split('/')[0]}")
    run_case(fuzz_env, case)


DENIED_TEMPLATES = [t for t in TEMPLATES if t.label().startswith((
    "transit/encrypt/", "transit/decrypt/", "transit/keys/", "secret/", "kv1/", "sys/"))]
denied_tokens = st.sampled_from([
    [(b"X-Vault-Token", LIMITED_TOKEN.encode())],
    [(b"Authorization", b"Bearer " + LIMITED_TOKEN.encode())],
    [(b"X-Vault-Token", LIMITED_TOKEN.encode()), (b"X-Vault-Token", ROOT_TOKEN.encode())],
    [(b"X-Vault-Token", b""), (b"Authorization", b"Bearer " + LIMITED_TOKEN.encode())],
])
denied_names = st.sampled_from(["prod", "denied", "prod/rotate", "prod/config", "production"])


@st.composite
def denied_cases(draw: st.DrawFn) -> Case:
    """The limited token on the paths its policy denies, spelled every way we can think of."""
    case = draw(cases(DENIED_TEMPLATES, tokens=denied_tokens))
    if draw(st.booleans()):  # aim the path parameter at the denied names
        s = seen(case)
        if s.rel is not None and "/" in case.target:
            head, _, _ = case.target.partition("?")
            base = head.rsplit("/", 1)[0]
            name = draw(denied_names)
            name = _mutate_path(name, draw(st.sampled_from([0, 4, 5, 8, 9])), draw(
                st.integers(0, 8)))
            case = Case(case.method, f"{base}/{name}", case.headers, case.body, case.chunked,
                        case.label)
    return case


@pytest.mark.timeout(300 * SCALE)  # generation ~1 min; shrinking a failure takes longer
@settings(FUZZ, max_examples=800 * SCALE)
@given(case=denied_cases())
def test_fuzz_denied_paths(fuzz_env: FuzzEnv, case: Case) -> None:
    run_case(fuzz_env, case)


# Request lines and headers the HTTP layer has to refuse or survive.
raw_methods = st.one_of(st.sampled_from(ALL_METHODS + ["LIST", "GE T", "", "G\x00T", "ÄÖ"]),
                        st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=12))
raw_header_names = st.one_of(
    st.sampled_from([b"X-Vault-Token", b"Content-Length", b"Transfer-Encoding", b"Host",
                     b"X Vault", b"", b":", b"X-Vault-Token ", b"\x00", b"\xff"]),
    st.binary(min_size=1, max_size=10))
raw_header_values = st.one_of(
    st.sampled_from([ROOT_TOKEN.encode(), LIMITED_TOKEN.encode(), b"chunked", b"-1", b"1x",
                     b"99999999999999999999", b"a\x00b", b"a\rb", b"\r\n X-Vault-Token: x",
                     b"\xff\xfe", b" " * 100, b"gzip, chunked"]),
    st.binary(max_size=20))


@pytest.mark.timeout(300 * SCALE)  # generation ~1 min; shrinking a failure takes longer
@settings(FUZZ, max_examples=350 * SCALE)
@given(method=raw_methods, path=st.sampled_from(["/v1/sys/health", "/v1/transit/keys/prod",
                                                  "/v1/secret/data/denied", "/v1/sys/mounts"]),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 x", "", "http/1.1"]),
       headers=st.lists(st.tuples(raw_header_names, raw_header_values), max_size=4),
       body=st.binary(max_size=64))
def test_fuzz_http_framing(fuzz_env: FuzzEnv, method: str, path: str, version: str,
                           headers: list[Header], body: bytes) -> None:
    """Malformed request lines and headers: the answer is a 4xx (or a proper API answer),
    never a 5xx, a hang or a crash, and never the canary without a valid token."""
    raw = (method.encode("utf-8") + b" " + path.encode() + b" " + version.encode() + b"\r\n"
           + b"Host: 127.0.0.1\r\nConnection: close\r\n"
           + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n" + body)
    resp = wire.exchange(fuzz_env.srv.port, raw)
    log = fuzz_env.new_log()
    found = []
    if resp.status == 0 and "without an answer" not in resp.error:
        found.append(f"no answer: {resp.error}")
    if resp.status >= 500:
        found.append(f"status {resp.status}")
    if TRACEBACK.encode() in resp.body or LOG_PROBLEM.search(log):
        found.append("a traceback or an error in the server log")
    if CANARY.encode() in resp.body:
        found.append("the canary leaked")
    if fuzz_env.srv.proc is not None and fuzz_env.srv.proc.poll() is not None:
        found.append("the server exited")
    assert not found, f"{found}\n  request: {raw[:2000]!r}\n  response: {resp.short()}\n{log}"


def test_server_survived(fuzz_env: FuzzEnv) -> None:
    """After the fuzzing: still unsealed and answering, fixtures intact, memory bounded."""
    env = fuzz_env
    deadline = time.monotonic() + 30
    while True:  # bounded: 30 s
        try:
            health = requests.get(env.srv.addr + "/v1/sys/health", timeout=5)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, "the server no longer answers"
            time.sleep(0.5)
    assert health.status_code == 200, health.text
    assert health.json()["sealed"] is False
    assert env.root("GET", "secret/data/denied").json()["data"]["data"] == {"canary": CANARY}
    assert env.limited("GET", "secret/data/denied").status_code == 403
    assert env.limited("POST", "secret/data/after-fuzz", json={"data": {"a": 1}}
                       ).status_code == 200
    assert env.limited("GET", "secret/data/after-fuzz").json()["data"]["data"] == {"a": 1}
    rss = wire.rss_kib(env.pid)
    assert rss < RSS_LIMIT_KIB, f"server RSS {rss} KiB (peak seen {env.peak_rss_kib} KiB)"
    log = env.new_log()
    assert not LOG_PROBLEM.search(log), log[-6000:]
