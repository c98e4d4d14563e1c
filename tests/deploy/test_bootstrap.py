"""`python -m transit.deploy.bootstrap init|unseal` run as an operator runs it (a subprocess,
keys read from its output, shares fed on a non-terminal stdin) against a live local cluster:
Redis primary + replica and three `transit server` nodes (performance standbys, as in
docker/) with the Shamir seal, started but not initialised, as `docker compose up` leaves
them (docs/deploy.md, "Initialise and unseal").

One cluster for the module. `test_unreachable_node` does not depend on the cluster's state;
`test_init_restart_unseal` walks init → restart of a node → unseal, bad shares included."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from tests.ha.util import HACluster, poll
from tests.redis_fixtures import redis_available
from transit.dev.processes import HOST

ROOT = Path(__file__).resolve().parents[2]
SHARES, THRESHOLD = 5, 3
UNREACHABLE_TIMEOUT = 1.5  # the script's --timeout for the unreachable-node cases


class BareCluster(HACluster):
    """Redis and every node started, nothing initialised: what `LocalCluster.up` does up to
    `sys/init` (with the same building blocks)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, nodes=3, replicas=1, lock_ttl=3.0, perf_standby=True,
                         seal="shamir", workers=1)

    def start(self) -> BareCluster:
        self.preflight()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            self._write_configs()
            for node in self.nodes:
                self._spawn(node)
            self._save_state()
            for node in self.nodes:
                self._wait_listening(node)
        except BaseException:
            self.down(timeout=5.0)
            raise
        return self

    def urls(self, first: int = 0) -> str:
        """The node URLs, comma-separated, node `first` first."""
        order = [first] + [n.index for n in self.nodes if n.index != first]
        return ",".join(self.nodes[i].addr for i in order)

    def codes(self) -> list[int | None]:
        return [None if (h := self.health(n.index)) is None else h[0] for n in self.nodes]

    def logs(self) -> str:
        return "\n".join(f"--- node {n.index} (pid {n.pid}) ---\n{n.log(3000)}"
                         for n in self.nodes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareCluster]:
    if not redis_available():
        pytest.fail("redis-server is not installed (run `make deps`)")
    c = BareCluster(tmp_path_factory.mktemp("bootstrap") / "cluster").start()
    try:
        yield c
    finally:
        c.down(timeout=5.0)


def bootstrap(*args: str, stdin: str = "", nodes: str | None = None,
              timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the script as the compose services do: nodes from $TRANSIT_NODES unless `--nodes`
    is among `args`; stdin a pipe (never a terminal)."""
    env = {k: v for k, v in os.environ.items() if k != "TRANSIT_NODES"}
    if nodes is not None:
        env["TRANSIT_NODES"] = nodes
    return subprocess.run([sys.executable, "-m", "transit.deploy.bootstrap", *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def all_ready(c: BareCluster) -> list[int | None] | None:
    """Health codes once every node is unsealed and exactly one is active, else None."""
    codes = c.codes()
    ok = codes.count(200) == 1 and all(code in (200, 429, 473) for code in codes)
    return codes if ok else None


def test_unreachable_node(cluster: BareCluster) -> None:
    """A node that never answers (nothing listening; or a listener that accepts and stays
    silent): the script gives up after --timeout with a message naming it, and sends
    nothing (an uninitialised cluster stays so)."""
    before = [cluster.health(n.index) for n in cluster.nodes]
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)  # the kernel completes the handshakes; nothing ever reads
        for dead in (f"http://{HOST}:{free_port()}",
                     f"http://{HOST}:{silent.getsockname()[1]}"):
            for action, where in (("init", "before"), ("unseal", "after")):
                opts = ["--timeout", str(UNREACHABLE_TIMEOUT)]
                args = [*opts, action] if where == "before" else [action, *opts]
                t0 = time.monotonic()
                r = bootstrap(*args, nodes=f"{cluster.urls()},{dead}")
                took = time.monotonic() - t0
                assert r.returncode == 1, (args, r.stdout, r.stderr)
                assert r.stderr == \
                    f"error: {dead} does not answer after {UNREACHABLE_TIMEOUT:g}s\n"
                assert r.stdout == ""
                # waited for it (a causal lower bound: timed from before the script started,
                # so load only lengthens it); that it gave up at --timeout, not later, is the
                # error text above (no upper bound on a shared machine)
                assert UNREACHABLE_TIMEOUT <= took, took
    after = [cluster.health(n.index) for n in cluster.nodes]
    assert [h and h[1].get("initialized") for h in after] == \
        [h and h[1].get("initialized") for h in before]


def test_init_restart_unseal(cluster: BareCluster) -> None:
    try:
        _init_restart_unseal(cluster)
    except BaseException:
        print(cluster.logs())
        raise


def _init_restart_unseal(cluster: BareCluster) -> None:
    assert cluster.codes() == [501, 501, 501]  # started, not initialised

    # -- unseal before init: refused ---------------------------------------------------------
    r = bootstrap("unseal", nodes=cluster.urls())
    assert r.returncode == 1 and "error: the cluster is not initialised; use `init`" in r.stderr
    no_traceback(r)

    # -- init ---------------------------------------------------------------------------------
    r = bootstrap("init", "--nodes", cluster.urls(), "--key-shares", str(SHARES),
                  "--key-threshold", str(THRESHOLD))
    assert r.returncode == 0, r.stdout + r.stderr
    no_traceback(r)
    keys = re.findall(r"^Unseal Key (\d+): (\S+)$", r.stdout, re.M)
    assert [int(i) for i, _ in keys] == list(range(1, SHARES + 1)), r.stdout
    shares = [k for _, k in keys]
    assert len(set(shares)) == SHARES
    tokens = re.findall(r"^Initial Root Token: (\S+)$", r.stdout, re.M)
    assert len(tokens) == 1, r.stdout
    token = tokens[0]
    for node in cluster.nodes:
        assert f"{node.addr}: unsealed" in r.stdout
    codes = poll(lambda: all_ready(cluster), 20.0, "every node unsealed, one active")
    active = codes.index(200)

    # The printed root token works: a transit key on the active node.
    client = hvac.Client(url=cluster.nodes[active].addr, token=token, timeout=10)
    assert client.is_authenticated()
    client.sys.enable_secrets_engine("transit")
    client.secrets.transit.create_key("orders")
    ct = client.secrets.transit.encrypt_data(
        "orders", base64.b64encode(b"card 4111").decode())["data"]["ciphertext"]
    assert base64.b64decode(client.secrets.transit.decrypt_data(
        "orders", ct)["data"]["plaintext"]) == b"card 4111"

    # A second init refuses: the cluster is initialised.
    r = bootstrap("init", "--nodes", cluster.urls())
    assert r.returncode == 1 and "is already initialised; use `unseal`" in r.stderr
    assert "Unseal Key" not in r.stdout
    no_traceback(r)

    # -- restart a standby: it comes back sealed ---------------------------------------------
    s = next(i for i, code in enumerate(codes) if code != 200)
    cluster.restart(s, wait=False)
    poll(lambda: (h := cluster.health(s)) is not None and h[0] == 503
         and h[1].get("initialized") and h[1].get("sealed"), 20.0, f"node {s} sealed")
    # It is the first node of the list: `unseal` reads the threshold from a sealed node.
    nodes = cluster.urls(first=s)

    # -- bad input ----------------------------------------------------------------------------
    sealed_node = cluster.nodes[s].addr

    def unseal_fails(lines: list[str], says: str) -> None:
        r = bootstrap("unseal", stdin="".join(f"{line}\n" for line in lines), nodes=nodes)
        assert r.returncode == 1, r.stdout + r.stderr
        no_traceback(r)
        assert says in r.stderr, r.stderr
        h = cluster.health(s)
        assert h is not None and h[0] == 503 and h[1].get("sealed"), h

    # Too few shares, or one twice: refused before anything is sent.
    unseal_fails([shares[0]], "error: not enough key shares (1 of 3)")
    unseal_fails([shares[0], shares[0]], "error: key share 2 repeats an earlier one")
    # A share that combines into the wrong key; one that is not a share at all: the server's
    # message, and which node is still sealed.
    wrong = base64.b64encode(os.urandom(33)).decode()
    still = f"error: 1 node(s) still sealed: {sealed_node}"
    unseal_fails([shares[0], wrong, shares[1]],
                 f"error: {sealed_node}: Unseal failed, invalid key\n{still}")
    unseal_fails([shares[0], wrong, "not-a-key!"],
                 f"error: {sealed_node}: 'key' must be a valid hex or base64 string\n{still}")
    # That last run left two shares (one wrong) in the node's unseal progress.
    assert cluster.request(s, "GET", "sys/seal-status").json()["progress"] == 2
    assert all_ready(cluster) is None  # node s is still sealed; the others are untouched

    # -- unseal with the right shares (not the ones init used) -------------------------------
    # The stale progress is discarded first, else the wrong share would spoil this attempt.
    r = bootstrap("unseal", stdin="\n".join(shares[2:]) + "\n", nodes=nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    no_traceback(r)
    assert f"{cluster.nodes[s].addr}: unsealed" in r.stdout
    codes = poll(lambda: all_ready(cluster), 20.0, "the restarted node unsealed")
    assert codes[s] in (429, 473), codes  # a standby again
    assert codes.index(200) == active
    assert client.secrets.transit.read_key("orders")["data"]["name"] == "orders"

    # Nothing sealed: `unseal` says so and asks for no share (stdin left empty).
    r = bootstrap("unseal", nodes=nodes)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "every node is already unsealed\n" and r.stderr == ""
