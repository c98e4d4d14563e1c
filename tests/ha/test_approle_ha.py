"""AppRole on an HA cluster with two worker processes per node (spec auth-api §2.5; DESIGN
§4, §7): a login through the standby is forwarded to the active node with the client's
address, and a use-limited secret ID raced by logins through both nodes and every worker is
spent exactly as many times as it has uses (one guarded writer per secret-ID entry)."""

from __future__ import annotations

import http.client
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.ha.test_workers import WorkersCluster, wcluster  # noqa: F401  (the cluster fixture)
from tests.ha.util import poll


def _login(addr: str, mount: str, role_id: str, secret_id: str,
           source: str = "127.0.0.1") -> int:
    """One login on a new connection (so the kernel picks any worker of the node)."""
    host, port = addr.rsplit("/", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    conn.request("POST", f"/v1/auth/{mount}/login",
                 body=json.dumps({"role_id": role_id, "secret_id": secret_id}),
                 headers={"Connection": "close"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_approle_logins_across_nodes_and_workers(wcluster: WorkersCluster) -> None:  # noqa: F811
    active, standby = poll(wcluster.settled, 15, "a settled cluster")
    mount = "ha-ar-" + uuid.uuid4().hex[:6]
    root = {"X-Vault-Token": wcluster.root_token, "Connection": "close"}
    assert wcluster.request(active, "POST", f"sys/auth/{mount}",
                            json={"type": "approle"}).status_code == 204
    assert wcluster.request(active, "POST", f"auth/{mount}/role/app",
                            json={"token_ttl": "5m"}).status_code == 204
    role_id = wcluster.request(active, "GET", f"auth/{mount}/role/app/role-id"
                               ).json()["data"]["role_id"]

    def listed() -> bool:  # new connections: every worker of both nodes knows the mount
        return all(mount + "/" in requests.get(f"{wcluster.nodes[n].addr}/v1/sys/auth",
                                               headers=root, timeout=10).json()["data"]
                   for n in (active, standby) for _ in range(8))

    poll(listed, 10, "the approle mount on every worker")
    addrs = [wcluster.nodes[n].addr for n in (standby, active)]

    # the secret ID's CIDRs see the client's address through the standby, not the standby's
    r = wcluster.request(active, "POST", f"auth/{mount}/role/app/secret-id",
                         json={"cidr_list": "127.0.0.2/32"})
    bound = r.json()["data"]["secret_id"]
    assert _login(addrs[0], mount, role_id, bound, source="127.0.0.2") == 200
    assert _login(addrs[0], mount, role_id, bound) == 400

    uses, attempts = 3, 7  # failures count toward the role_id's lockout (5): stay below
    r = wcluster.request(active, "POST", f"auth/{mount}/role/app/secret-id",
                         json={"num_uses": uses})
    racing, accessor = r.json()["data"]["secret_id"], r.json()["data"]["secret_id_accessor"]
    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(lambda i: _login(addrs[i % 2], mount, role_id, racing),
                                 range(attempts)))
    assert sorted(statuses) == [200] * uses + [400] * (attempts - uses), statuses
    r = wcluster.request(active, "POST", f"auth/{mount}/role/app/secret-id-accessor/lookup",
                         json={"secret_id_accessor": accessor})
    assert r.status_code == 404  # the last use deleted it with its accessor
    assert wcluster.request(standby, "DELETE", f"sys/auth/{mount}").status_code == 204
