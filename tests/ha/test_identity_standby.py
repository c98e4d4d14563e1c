"""Identity on a performance standby (spec auth-api §6.7, §6.8; DESIGN §5): a token with an
entity is checked there from the standby's own copy of the identity store, and a change on
the active node (entity metadata, disabled) reaches every standby worker through the
invalidation feed — a request carrying the change's X-Vault-Index already sees it."""

from __future__ import annotations

import base64

from tests.ha.test_perf_standby import PerfCluster, pc  # noqa: F401  (the cluster fixture)

OWN_KEY = 'path "transit/encrypt/{{identity.entity.metadata.app}}" { capabilities = ["update"] }\n'
TOKEN_ACCESSOR = "auth_token_00000000"


def _ok(r: object) -> None:
    status = r.status_code  # type: ignore[attr-defined]
    assert status in (200, 204), r.text  # type: ignore[attr-defined]


def test_identity_policies_and_templating_on_a_perf_standby(pc: PerfCluster) -> None:  # noqa: F811
    a = pc.active_index()
    assert a is not None
    _ok(pc.request(a, "POST", "sys/mounts/transit", json={"type": "transit"}))
    for key in ("ka", "kb"):
        _ok(pc.request(a, "POST", f"transit/keys/{key}"))
    _ok(pc.request(a, "PUT", "sys/policies/acl/own-key", json={"policy": OWN_KEY}))
    r = pc.request(a, "GET", "sys/auth")
    accessor = (r.json()["data"]["token/"]["accessor"] if r.status_code == 200
                else TOKEN_ACCESSOR)
    r = pc.request(a, "POST", "identity/entity",
                   json={"name": "svc-a", "metadata": {"app": "ka"}, "policies": ["own-key"]})
    _ok(r)
    eid = r.json()["data"]["id"]
    _ok(pc.request(a, "POST", "identity/entity-alias",
                   json={"name": "svc-a", "mount_accessor": accessor, "canonical_id": eid}))
    _ok(pc.request(a, "POST", "auth/token/roles/apps",
                   json={"allowed_entity_aliases": ["svc-*"], "orphan": True}))
    r = pc.request(a, "POST", "auth/token/create/apps",
                   json={"entity_alias": "svc-a", "policies": ["default"]})
    _ok(r)
    token = r.json()["auth"]["client_token"]
    body = {"plaintext": base64.b64encode(b"x").decode()}

    def encrypt(node: int, key: str, index: dict[str, str]) -> int:
        # a new connection each time, so the node's several worker processes all answer
        return int(pc.request(node, "POST", f"transit/encrypt/{key}", json=body, token=token,
                              headers={**index, "Connection": "close"}).status_code)

    index = pc.idx(r)
    for s in pc.standbys(a):
        for _ in range(4):
            assert encrypt(s, "ka", index) == 200
            assert encrypt(s, "kb", index) == 403
        got = pc.request(s, "GET", f"identity/entity/id/{eid}", headers=index)
        assert got.status_code == 200 and got.json()["data"]["metadata"] == {"app": "ka"}

    r = pc.request(a, "POST", f"identity/entity/id/{eid}", json={"metadata": {"app": "kb"}})
    _ok(r)
    index = pc.idx(r)
    for s in pc.standbys(a):
        for _ in range(4):
            assert encrypt(s, "kb", index) == 200
            assert encrypt(s, "ka", index) == 403

    r = pc.request(a, "POST", f"identity/entity/id/{eid}", json={"disabled": True})
    _ok(r)
    index = pc.idx(r)
    for s in pc.standbys(a):
        for _ in range(4):
            assert encrypt(s, "kb", index) == 403
