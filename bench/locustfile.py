"""Locust load test for any server that speaks Vault's HTTP API (ours, OpenBao, Vault).

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root \\
        locust -f bench/locustfile.py --headless -u 8 -r 8 -t 30s --processes 2 --tags encrypt

Target: `VAULT_ADDR` (several addresses, comma-separated, spread the users over the nodes of a
cluster, round-robin) and `VAULT_TOKEN` (the application token: root, or a policy-limited one).
`VAULT_ADMIN_TOKEN` (default: `VAULT_TOKEN`) creates the keys and the KV secrets at test start
and rotates the key of the mixed workload; with a policy-limited `VAULT_TOKEN` pass root (or
any token allowed to write `transit/keys/*` and `secret/data/bench/*`) there.

Tasks, one tag per operation (`--tags`, several allowed; untagged runs do all of them):

    encrypt, decrypt, batch_encrypt, batch_decrypt, rewrap, datakey, hmac, sign, verify,
    kv_read, kv_write, mixed

`mixed` is an application's workload: 55 % encrypt, 40 % decrypt, 4.9 % KV v2 reads and 0.1 %
key rotations by the admin token (on its own key, `bench-mixed`; BENCH_MIXED_ROTATE sets the
share).

Parameters (command-line options, defaulting to environment variables):

    --payload-size  BENCH_PAYLOAD_SIZE   plaintext / input bytes: 64, 1024, 16384 (default 64)
    --key-type      BENCH_KEY_TYPE       encryption key type (default aes256-gcm96)
    --sign-key-type BENCH_SIGN_KEY_TYPE  sign/verify key type: ed25519, ecdsa-p256 (default ed25519)
    --batch-size    BENCH_BATCH_SIZE     items per batch request (default 100; OpenBao refuses
                                         JSON bodies of more than ~1,000 strings: keep it <= 250)
    --mount         BENCH_MOUNT          transit mount path (default transit)

Request names carry the parameters ("encrypt 64B", "batch encrypt x100 64B", "sign ed25519"),
so the CSVs of several runs can be read side by side; bench/report.py parses them.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import urllib.error
import urllib.request

from locust import FastHttpUser, constant, events, tag, task
from locust.runners import WorkerRunner

ADDRS = [a.strip().rstrip("/") for a in os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200")
         .split(",") if a.strip()]
TOKEN = os.environ.get("VAULT_TOKEN", "root")
ADMIN_TOKEN = os.environ.get("VAULT_ADMIN_TOKEN", TOKEN)
KV_SECRETS = 16  # secret/data/bench/item-<i>, written at test start, read by kv_read and mixed
# share of key rotations in the mixed workload (the tests raise it to see one in a few seconds)
MIXED_ROTATE = float(os.environ.get("BENCH_MIXED_ROTATE", "0.001"))

_next_addr = itertools.count(random.randrange(len(ADDRS)))


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    env = os.environ.get
    parser.add_argument("--payload-size", type=int, default=int(env("BENCH_PAYLOAD_SIZE", "64")),
                        help="plaintext/input bytes (64, 1024, 16384)")
    parser.add_argument("--key-type", default=env("BENCH_KEY_TYPE", "aes256-gcm96"),
                        help="encryption key type")
    parser.add_argument("--sign-key-type", default=env("BENCH_SIGN_KEY_TYPE", "ed25519"),
                        help="sign/verify key type (ed25519, ecdsa-p256)")
    parser.add_argument("--batch-size", type=int, default=int(env("BENCH_BATCH_SIZE", "100")),
                        help="items per batch request (<= 250 for OpenBao)")
    parser.add_argument("--mount", default=env("BENCH_MOUNT", "transit"),
                        help="transit mount path")


class Params:
    """The run's parameters, read from the parsed options (the master sends them to workers)."""

    def __init__(self, opts) -> None:
        self.payload_size = int(getattr(opts, "payload_size", 64))
        self.key_type = getattr(opts, "key_type", "aes256-gcm96")
        self.sign_key_type = getattr(opts, "sign_key_type", "ed25519")
        self.batch_size = int(getattr(opts, "batch_size", 100))
        self.mount = getattr(opts, "mount", "transit").strip("/")

    @property
    def enc_key(self) -> str:
        return f"bench-{self.key_type}"

    @property
    def sign_key(self) -> str:
        return f"bench-{self.sign_key_type}"

    def keys(self) -> dict[str, str]:
        """Key name -> type, every key a task uses."""
        return {self.enc_key: self.key_type, self.sign_key: self.sign_key_type,
                "bench-mixed": "aes256-gcm96"}


def size_label(n: int) -> str:
    return f"{n // 1024}KiB" if n >= 1024 and n % 1024 == 0 else f"{n}B"


def _admin(method: str, addr: str, path: str, body: dict | None = None) -> int:
    req = urllib.request.Request(
        f"{addr}/v1/{path}", method=method, data=json.dumps(body or {}).encode(),
        headers={"X-Vault-Token": ADMIN_TOKEN, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def setup(params: Params, addr: str | None = None) -> None:
    """Create the keys and KV secrets the tasks use (idempotent): on the first address, which
    a cluster forwards to its active node when it is a standby."""
    addr = addr or ADDRS[0]
    for name, ktype in params.keys().items():
        status = _admin("POST", addr, f"{params.mount}/keys/{name}", {"type": ktype})
        if status >= 400:
            raise RuntimeError(f"creating {params.mount}/keys/{name} ({ktype}) on {addr}: "
                               f"HTTP {status}")
    value = base64.b64encode(os.urandom(48)).decode()
    for i in range(KV_SECRETS):
        status = _admin("POST", addr, f"secret/data/bench/item-{i}",
                        {"data": {"value": value, "n": i}})
        if status >= 400:
            raise RuntimeError(f"writing secret/data/bench/item-{i} on {addr}: HTTP {status}")


@events.test_start.add_listener
def _setup(environment, **_kw) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master (or the single local process) sets up
    setup(Params(environment.parsed_options))


class VaultUser(FastHttpUser):
    """One application client. Closed loop: the next request leaves as soon as the last
    answered (wait_time 0), so users = concurrent connections."""

    host = ADDRS[0]
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.addr = ADDRS[next(_next_addr) % len(ADDRS)]
        self.client.base_url = self.addr
        self.p = Params(self.environment.parsed_options)
        self.h = {"X-Vault-Token": TOKEN, "Content-Type": "application/json"}
        self.admin_h = {"X-Vault-Token": ADMIN_TOKEN, "Content-Type": "application/json"}
        self.size = size_label(self.p.payload_size)
        self.m = self.p.mount
        self.pt = base64.b64encode(os.urandom(self.p.payload_size)).decode()
        self.n = self.p.batch_size
        self.batch_pt = [{"plaintext": base64.b64encode(os.urandom(self.p.payload_size)).decode()}
                         for _ in range(self.n)]
        # ciphertexts to decrypt and rewrap, one signature to verify: made once per user
        self.ct = self._post(f"{self.m}/encrypt/{self.p.enc_key}", {"plaintext": self.pt},
                             "setup: encrypt")["ciphertext"]
        self.mixed_ct = self._post(f"{self.m}/encrypt/bench-mixed", {"plaintext": self.pt},
                                   "setup: encrypt")["ciphertext"]
        self.batch_ct = None  # made by the first batch decrypt (not every run needs it)
        self.sig = None
        self.kv_writes = itertools.count()

    def _post(self, path: str, body: dict, name: str, headers: dict | None = None) -> dict:
        """A request whose answer the next ones need: a failure raises (and is counted)."""
        with self.client.post(f"/v1/{path}", data=json.dumps(body), headers=headers or self.h,
                              name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
                raise RuntimeError(f"{name}: HTTP {r.status_code}")
            return r.json()["data"]

    def _call(self, method: str, path: str, name: str, body: dict | None = None,
              headers: dict | None = None, check=None) -> None:
        """A measured request: non-2xx (and a failed `check` of the JSON) is a failure."""
        with self.client.request(method, f"/v1/{path}", name=name, headers=headers or self.h,
                                 data=json.dumps(body) if body is not None else None,
                                 catch_response=True) as r:
            if not 200 <= r.status_code < 300:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
            elif check is not None:
                err = check(r.json())
                if err:
                    r.failure(err)

    # -- transit: single items --------------------------------------------------------------
    @tag("encrypt")
    @task
    def encrypt(self) -> None:
        self._call("POST", f"{self.m}/encrypt/{self.p.enc_key}", f"encrypt {self.size}",
                   {"plaintext": self.pt})

    @tag("decrypt")
    @task
    def decrypt(self) -> None:
        self._call("POST", f"{self.m}/decrypt/{self.p.enc_key}", f"decrypt {self.size}",
                   {"ciphertext": self.ct},
                   check=lambda j: None if j["data"]["plaintext"] == self.pt else "wrong plaintext")

    @tag("rewrap")
    @task
    def rewrap(self) -> None:
        self._call("POST", f"{self.m}/rewrap/{self.p.enc_key}", f"rewrap {self.size}",
                   {"ciphertext": self.ct})

    @tag("datakey")
    @task
    def datakey(self) -> None:
        self._call("POST", f"{self.m}/datakey/plaintext/{self.p.enc_key}", "datakey plaintext",
                   {"bits": 256})

    @tag("hmac")
    @task
    def hmac(self) -> None:
        self._call("POST", f"{self.m}/hmac/{self.p.enc_key}", f"hmac {self.size}",
                   {"input": self.pt})

    # -- transit: batches -------------------------------------------------------------------
    def _batch_check(self, j: dict) -> str | None:
        items = j["data"]["batch_results"]
        if len(items) != self.n:
            return f"{len(items)} results for {self.n} items"
        bad = [it.get("error") for it in items if it.get("error")]
        return f"{len(bad)} item errors: {bad[0]}" if bad else None

    @tag("batch_encrypt")
    @task
    def batch_encrypt(self) -> None:
        self._call("POST", f"{self.m}/encrypt/{self.p.enc_key}",
                   f"batch encrypt x{self.n} {self.size}", {"batch_input": self.batch_pt},
                   check=self._batch_check)

    @tag("batch_decrypt")
    @task
    def batch_decrypt(self) -> None:
        if self.batch_ct is None:
            data = self._post(f"{self.m}/encrypt/{self.p.enc_key}",
                              {"batch_input": self.batch_pt}, "setup: batch encrypt")
            self.batch_ct = [{"ciphertext": it["ciphertext"]} for it in data["batch_results"]]
        self._call("POST", f"{self.m}/decrypt/{self.p.enc_key}",
                   f"batch decrypt x{self.n} {self.size}", {"batch_input": self.batch_ct},
                   check=self._batch_check)

    # -- transit: signatures ----------------------------------------------------------------
    @tag("sign")
    @task
    def sign(self) -> None:
        self._call("POST", f"{self.m}/sign/{self.p.sign_key}",
                   f"sign {self.p.sign_key_type} {self.size}", {"input": self.pt})

    @tag("verify")
    @task
    def verify(self) -> None:
        if self.sig is None:
            self.sig = self._post(f"{self.m}/sign/{self.p.sign_key}", {"input": self.pt},
                                  "setup: sign")["signature"]
        self._call("POST", f"{self.m}/verify/{self.p.sign_key}",
                   f"verify {self.p.sign_key_type} {self.size}",
                   {"input": self.pt, "signature": self.sig},
                   check=lambda j: None if j["data"]["valid"] is True else "signature not valid")

    # -- KV v2 ------------------------------------------------------------------------------
    @tag("kv_read")
    @task
    def kv_read(self) -> None:
        self._call("GET", f"secret/data/bench/item-{random.randrange(KV_SECRETS)}", "kv read")

    @tag("kv_write")
    @task
    def kv_write(self) -> None:
        # a bounded set of paths per user: KV v2 keeps 10 versions of each
        path = f"secret/data/bench/w-{id(self) % 100_000}-{next(self.kv_writes) % 8}"
        self._call("POST", path, f"kv write {self.size}", {"data": {"value": self.pt}})

    # -- an application's mixed workload ----------------------------------------------------
    @tag("mixed")
    @task
    def mixed(self) -> None:
        x = random.random()
        if x < MIXED_ROTATE:
            self._call("POST", f"{self.m}/keys/bench-mixed/rotate", "mixed: rotate (admin)", {},
                       headers=self.admin_h)
        elif x < MIXED_ROTATE + 0.049:
            self._call("GET", f"secret/data/bench/item-{random.randrange(KV_SECRETS)}",
                       "mixed: kv read")
        elif x < MIXED_ROTATE + 0.449:
            self._call("POST", f"{self.m}/decrypt/bench-mixed", f"mixed: decrypt {self.size}",
                       {"ciphertext": self.mixed_ct})
        else:
            self._call("POST", f"{self.m}/encrypt/bench-mixed", f"mixed: encrypt {self.size}",
                       {"plaintext": self.pt})
