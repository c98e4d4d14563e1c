"""ACL policies: parsing, matching (Vault's precedence rules), capabilities, store."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from tests.loop import ticks_while
from transit.acl import ACL, AclPolicyStore, Decision, parse_policy, requires_sudo
from transit.acl.policy import CREATE, DENY, LIST, READ, SUDO, UPDATE
from transit.acl.store import DEFAULT_POLICY
from transit.errors import UserError
from transit.storage.base import StorageView
from transit.storage.inmem import InmemBackend


def acl(*texts: str) -> ACL:
    return ACL([parse_policy(f"p{i}", t) for i, t in enumerate(texts)])


def caps(a: ACL, path: str) -> list[str]:
    return a.capabilities(path)


# -- parsing -------------------------------------------------------------------------------


def test_parse_hcl_capabilities_and_prefix():
    text = 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\npath "/sys/mounts" { capabilities = ["read", "sudo"] }\n'
    p = parse_policy("p", text)
    assert p.raw == text
    assert [r.pattern for r in p.paths] == ["secret/*", "sys/mounts"]
    glob, exact = p.paths
    assert glob.is_prefix and glob.path == "secret/" and glob.capabilities == READ | LIST
    assert not exact.is_prefix and exact.path == "sys/mounts" and exact.capabilities == READ | SUDO


@pytest.mark.parametrize(
    "legacy, bits",
    [
        ("deny", DENY),
        ("read", READ | LIST),
        ("write", CREATE | READ | UPDATE | 16 | LIST),
        ("sudo", CREATE | READ | UPDATE | 16 | LIST | SUDO),
    ],
)
def test_parse_legacy_policy_shorthand(legacy: str, bits: int):
    p = parse_policy("p", f'path "a/*" {{ policy = "{legacy}" }}')
    assert p.paths[0].capabilities == bits


def test_parse_deny_wipes_other_capabilities_and_parameters():
    p = parse_policy(
        "p",
        'path "a" { capabilities = ["read", "deny", "update"]\n allowed_parameters = { "x" = [] } }',
    )
    assert p.paths[0].capabilities == DENY
    assert p.paths[0].allowed_parameters is None


def test_parse_segment_wildcards_keep_trailing_star():
    p = parse_policy("p", 'path "a/+/b*" { capabilities = ["read"] }')
    r = p.paths[0]
    assert r.has_segment_wildcards and not r.is_prefix and r.path == "a/+/b*"


def test_parse_parameters_and_wrapping_ttls():
    text = """
    path "transit/encrypt/*" {
      capabilities = ["update"]
      allowed_parameters = { "Plaintext" = [], "context" = ["abc", "x*"] }
      denied_parameters = { "key_version" = [] }
      required_parameters = ["plaintext"]
      min_wrapping_ttl = "1m"
      max_wrapping_ttl = 3600
    }
    """
    r = parse_policy("p", text).paths[0]
    assert r.allowed_parameters == {"plaintext": [], "context": ["abc", "x*"]}
    assert r.denied_parameters == {"key_version": []}
    assert r.required_parameters == ["plaintext"]
    assert (r.min_wrapping_ttl, r.max_wrapping_ttl) == (60, 3600)


def test_parse_json_policy_object_and_list_forms():
    obj = json.dumps({"path": {"secret/*": {"capabilities": ["read"]}, "a": {"policy": "write"}}})
    p = parse_policy("j", obj)
    assert p.raw == obj
    assert {r.pattern for r in p.paths} == {"secret/*", "a"}
    lst = json.dumps(
        {"path": [{"x": {"capabilities": ["list"]}}, {"y": {"capabilities": ["read"]}}]}
    )
    assert [r.pattern for r in parse_policy("j", lst).paths] == ["x", "y"]


def test_parse_empty_and_comment_only_policies():
    assert parse_policy("e", "").paths == []
    assert parse_policy("e", "# nothing\n// here\n").paths == []


def test_parse_default_policy_text():
    p = parse_policy("default", DEFAULT_POLICY)
    assert "auth/token/lookup-self" in {r.pattern for r in p.paths}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'path "a" { capabilities = ["reed"] }',
            'failed to parse policy: path "a": invalid capability "reed"',
        ),
        (
            'path "a" { policy = "admin" }',
            'failed to parse policy: path "a": invalid policy "admin"',
        ),
        (
            'path "a" { capabilities = ["read"]\n bogus = 1 }',
            'failed to parse policy: path "a": invalid key "bogus"',
        ),
        ('foo = "bar"', 'failed to parse policy: invalid key "foo"'),
        (
            'path "a/+*" { capabilities = ["read"] }',
            "failed to parse policy: path \"a/+*\": invalid use of wildcards ('+*' is forbidden)",
        ),
        (
            'path "a" { capabilities = ["read"]\n min_wrapping_ttl = 100\n max_wrapping_ttl = 10 }',
            "failed to parse policy: max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        ('path "a" { capabilities = [1] }', "failed to parse policy: "),
        (
            'path "a" { capabilities = ["read"]\n max_wrapping_ttl = "3000000000h" }',
            "failed to parse policy: error parsing max_wrapping_ttl: time: invalid duration",
        ),
        (
            'path "a" { capabilities = ["read"]\n min_wrapping_ttl = 99999999999999999999 }',
            "failed to parse policy: error parsing min_wrapping_ttl: time: invalid duration",
        ),
    ],
)
def test_parse_errors(text: str, message: str):
    with pytest.raises(UserError) as exc:
        parse_policy("p", text)
    assert exc.value.message.startswith(message)


@pytest.mark.parametrize(
    "text", ['path "a" { capabilities = [read }', 'path "a" {', "{not json", '["a"]', 'path = "x"']
)
def test_parse_malformed_text(text: str):
    with pytest.raises(UserError) as exc:
        parse_policy("p", text)
    assert exc.value.message.startswith("failed to parse policy: ")


# -- matching ------------------------------------------------------------------------------


def test_deny_by_default_and_empty_acl():
    a = ACL([])
    assert a.allowed("transit/keys/k", "read") == Decision(False)
    assert caps(a, "anything") == ["deny"]


def test_exact_vs_glob():
    a = acl(
        'path "transit/keys/k" { capabilities = ["read"] }\npath "transit/keys/*" { capabilities = ["list", "delete"] }'
    )
    assert a.allowed("transit/keys/k", "read").allowed
    # an exact rule wins outright, even if it lacks the capability
    assert not a.allowed("transit/keys/k", "delete").allowed
    assert a.allowed("transit/keys/other", "delete").allowed
    assert not a.allowed("transit/keys/other", "read").allowed


def test_glob_matches_across_slashes_and_empty_suffix():
    a = acl('path "secret/*" { capabilities = ["read"] }')
    assert a.allowed("secret/a/b/c", "read").allowed
    assert a.allowed("secret/", "read").allowed
    assert not a.allowed("secret", "read").allowed
    b = acl('path "transit/encrypt/app-*" { capabilities = ["update"] }')
    assert b.allowed("transit/encrypt/app-1", "update").allowed
    assert not b.allowed("transit/encrypt/other", "update").allowed


def test_longest_prefix_wins():
    a = acl(
        'path "secret/*" { capabilities = ["read"] }\npath "secret/team/*" { capabilities = ["update"] }'
    )
    assert a.allowed("secret/team/x", "update").allowed
    assert not a.allowed("secret/team/x", "read").allowed
    assert a.allowed("secret/other", "read").allowed


def test_plus_matches_exactly_one_segment():
    a = acl('path "transit/keys/+" { capabilities = ["read"] }')
    assert a.allowed("transit/keys/k", "read").allowed
    assert not a.allowed("transit/keys/k/config", "read").allowed
    assert not a.allowed("transit/keys", "read").allowed
    b = acl('path "secret/+/config" { capabilities = ["read"] }')
    assert b.allowed("secret/x/config", "read").allowed
    assert not b.allowed("secret/x/y/config", "read").allowed


def test_plus_with_trailing_glob():
    a = acl('path "kv/+/team-*" { capabilities = ["read"] }')
    assert a.allowed("kv/data/team-a/x", "read").allowed
    assert not a.allowed("kv/data/other", "read").allowed


@pytest.mark.parametrize(
    "low, high, path",
    [
        # rule 1: the first wildcard later ranks higher
        (
            'path "a/+/c/d" { capabilities = ["read"] }',
            'path "a/b/+/d" { capabilities = ["update"] }',
            "a/b/c/d",
        ),
        (
            'path "a/+" { capabilities = ["read"] }',
            'path "a/b*" { capabilities = ["update"] }',
            "a/bc",
        ),
        # rule 2: not ending in * ranks higher
        (
            'path "a/+/b*" { capabilities = ["read"] }',
            'path "a/+/bc" { capabilities = ["update"] }',
            "a/x/bc",
        ),
        (
            'path "a/*" { capabilities = ["read"] }',
            'path "a/+" { capabilities = ["update"] }',
            "a/x",
        ),
        # rule 3: fewer + segments ranks higher
        (
            'path "a/+/+/d" { capabilities = ["read"] }',
            'path "a/+/c/d" { capabilities = ["update"] }',
            "a/b/c/d",
        ),
        # rule 4: longer ranks higher
        (
            'path "a/+/b*" { capabilities = ["read"] }',
            'path "a/+/bc*" { capabilities = ["update"] }',
            "a/x/bcd",
        ),
    ],
)
def test_wildcard_precedence(low: str, high: str, path: str):
    for order in ((low, high), (high, low)):
        a = acl(*order)
        assert a.allowed(path, "update").allowed, order
        assert not a.allowed(path, "read").allowed, order


def test_same_pattern_unions_across_policies_with_granting_policies():
    a = acl(
        'path "t/*" { capabilities = ["read"] }', 'path "t/*" { capabilities = ["read", "update"] }'
    )
    d = a.allowed("t/x", "read")
    assert d.allowed and d.granting_policies == [
        {"name": "p0", "type": "acl"},
        {"name": "p1", "type": "acl"},
    ]
    assert a.allowed("t/x", "update").granting_policies == [{"name": "p1", "type": "acl"}]
    assert caps(a, "t/x") == ["read", "update"]


def test_different_patterns_do_not_union():
    a = acl('path "t/*" { capabilities = ["read"] }', 'path "t/x/*" { capabilities = ["update"] }')
    assert not a.allowed("t/x/y", "read").allowed


def test_deny_wins_for_same_pattern_in_any_order():
    for texts in (
        (
            'path "t/k" { capabilities = ["deny"] }',
            'path "t/k" { capabilities = ["read", "sudo"] }',
        ),
        (
            'path "t/k" { capabilities = ["read", "sudo"] }',
            'path "t/k" { capabilities = ["deny"] }',
        ),
    ):
        a = acl(*texts)
        d = a.allowed("t/k", "read")
        assert not d.allowed and not d.sudo
        assert caps(a, "t/k") == ["deny"]


def test_deny_on_more_specific_path():
    a = acl(
        'path "transit/*" { capabilities = ["read", "update"] }\npath "transit/keys/secret" { capabilities = ["deny"] }'
    )
    assert not a.allowed("transit/keys/secret", "read").allowed
    assert a.allowed("transit/keys/other", "read").allowed


def test_list_on_trailing_slash_paths():
    exact = acl('path "transit/keys" { capabilities = ["list"] }')
    assert exact.allowed("transit/keys/", "list").allowed
    assert exact.allowed("transit/keys", "list").allowed
    assert not exact.allowed("transit/keys/", "read").allowed
    glob = acl('path "transit/keys/*" { capabilities = ["list"] }')
    assert glob.allowed("transit/keys/", "list").allowed
    plus = acl('path "transit/+" { capabilities = ["list"] }')
    assert plus.allowed("transit/keys/", "list").allowed


def test_create_vs_update():
    a = acl('path "transit/encrypt/*" { capabilities = ["update"] }')
    assert a.allowed("transit/encrypt/k", "update").allowed
    assert not a.allowed("transit/encrypt/k", "create").allowed
    b = acl('path "transit/encrypt/*" { capabilities = ["create"] }')
    assert b.allowed("transit/encrypt/k", "create").allowed
    assert not b.allowed("transit/encrypt/k", "update").allowed


def test_operation_map_and_unknown_operation():
    a = acl('path "x" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }')
    for op in ("create", "read", "update", "delete", "list", "patch", "renew", "revoke"):
        assert a.allowed("x", op).allowed, op
    assert not a.allowed("x", "frobnicate").allowed
    assert a.allowed("anything", "help").allowed


def test_sudo_flag():
    a = acl('path "sys/audit*" { capabilities = ["read", "sudo"] }')
    d = a.allowed("sys/audit", "read")
    assert d.allowed and d.sudo
    d = a.allowed("sys/audit/file", "update")
    assert not d.allowed and d.sudo
    assert a.has_sudo("sys/audit/x")


def test_leading_slash_is_ignored():
    a = acl('path "/secret/x" { capabilities = ["read"] }')
    assert a.allowed("/secret/x", "read").allowed
    assert a.allowed("secret/x", "read").allowed


def test_root_policy_allows_everything():
    a = ACL([parse_policy("p", 'path "x" { capabilities = ["deny"] }'), parse_policy("root", "")])
    d = a.allowed("x", "delete")
    assert d.allowed and d.sudo and d.is_root
    assert d.granting_policies == [{"name": "root", "type": "acl"}]
    assert caps(a, "x") == ["root"]


def test_capabilities_sorted():
    a = acl(
        'path "x/*" { capabilities = ["update", "sudo", "create", "read", "list", "delete", "patch"] }'
    )
    assert caps(a, "x/y") == ["create", "delete", "list", "patch", "read", "sudo", "update"]


def test_memo_is_bounded_and_consistent():
    a = acl('path "k/*" { capabilities = ["read"] }')
    for i in range(10000):
        assert a.allowed(f"k/{i}", "read").allowed
    assert len(a._memo) <= 8192
    assert a.allowed("k/1", "read") is a.allowed("k/1", "read")


# -- parameter constraints -----------------------------------------------------------------


PARAMS = """
path "transit/encrypt/*" {
  capabilities = ["update", "create"]
  allowed_parameters = { "plaintext" = [], "context" = ["ab*", "x"] }
  denied_parameters = { "key_version" = [] }
}
path "transit/required/*" {
  capabilities = ["update"]
  required_parameters = ["plaintext"]
}
path "transit/deny-all/*" {
  capabilities = ["update"]
  denied_parameters = { "*" = [] }
}
"""


@pytest.mark.parametrize(
    "path, data, ok",
    [
        ("transit/encrypt/k", {"plaintext": "aGk="}, True),
        ("transit/encrypt/k", {}, True),
        ("transit/encrypt/k", {"plaintext": "aGk=", "context": "abc"}, True),
        ("transit/encrypt/k", {"plaintext": "aGk=", "context": "zzz"}, False),
        ("transit/encrypt/k", {"plaintext": "aGk=", "nonce": "x"}, False),
        ("transit/encrypt/k", {"Key_Version": 1}, False),
        ("transit/required/k", {"plaintext": "x"}, True),
        ("transit/required/k", {"other": "x"}, False),
        ("transit/deny-all/k", {}, True),
        ("transit/deny-all/k", {"a": 1}, False),
    ],
)
def test_parameter_constraints(path: str, data: dict[str, Any], ok: bool):
    a = acl(PARAMS)
    assert a.allowed(path, "update", data).allowed is ok
    assert a.allowed(path, "update", data).allowed is ok  # memo must not leak data results


def test_wrapping_ttl_constraints():
    a = acl(
        'path "w/*" { capabilities = ["read"]\n min_wrapping_ttl = 10\n max_wrapping_ttl = 100 }'
    )
    assert not a.allowed("w/x", "read").allowed
    assert a.allowed("w/x", "read", wrap_ttl=50).allowed
    assert not a.allowed("w/x", "read", wrap_ttl=500).allowed
    assert not a.allowed("w/x", "read", wrap_ttl=5).allowed


# -- sudo paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, sudo",
    [
        ("sys/audit", True),
        ("sys/audit/file", True),
        ("sys/raw/core/x", True),
        ("sys/rotate", True),
        ("sys/seal", True),
        ("sys/step-down", True),
        ("sys/remount", True),
        ("sys/auth/x", True),
        ("auth/token/accessors/", True),
        ("auth/token/revoke-orphan/x", True),
        ("sys/policies/acl/x", False),
        ("sys/mounts", False),
        ("sys/audit-hash/file", False),
        ("sys/auth", False),
        ("transit/keys/k", False),
        ("sys/key-status", False),
    ],
)
def test_requires_sudo(path: str, sudo: bool):
    assert requires_sudo(path, "update") is sudo
    assert requires_sudo(path, "help") is False


# -- store ---------------------------------------------------------------------------------


def store() -> tuple[AclPolicyStore, InmemBackend]:
    backend = InmemBackend()
    return AclPolicyStore(StorageView(backend, "sys/policy/")), backend


def test_store_setup_creates_default_and_keeps_edits():
    async def go():
        s, backend = store()
        await s.setup()
        assert await s.list() == ["default"]
        default = await s.get("default")
        assert default is not None and default.raw == DEFAULT_POLICY
        assert json.loads(await backend.get("sys/policy/default"))["Raw"] == DEFAULT_POLICY
        await s.put("default", 'path "x" { capabilities = ["read"] }')
        s2 = AclPolicyStore(StorageView(backend, "sys/policy/"))
        await s2.setup()
        assert (await s2.get("default")).raw == 'path "x" { capabilities = ["read"] }'
        # response-wrapping is stored but hidden and immutable
        assert (await s2.get("response-wrapping")) is not None
        assert "response-wrapping" not in await s2.list()

    asyncio.run(go())


def test_store_put_get_list_delete_verbatim_and_lowercase():
    async def go():
        s, _ = store()
        await s.setup()
        text = '# keep me\npath "Secret/*"   {  capabilities = ["read"]  }\n\n'
        await s.put("  MyPolicy ", text)
        p = await s.get("mypolicy")
        assert p is not None and p.name == "mypolicy" and p.raw == text
        assert (await s.get("MYPOLICY")) is p
        assert await s.list() == ["default", "mypolicy"]
        await s.delete("MyPolicy")
        assert await s.get("mypolicy") is None
        assert await s.list() == ["default"]
        await s.delete("never-existed")  # not an error

    asyncio.run(go())


def test_store_parses_a_large_policy_in_a_process_and_keeps_the_loop_turning():
    """A policy text over INLINE_PARSE_BYTES (the HCL parser takes ~1 ms per path block) is
    parsed in the process pool, when written and when loaded by another store: the same
    policy as an inline parse, the same error for bad text, and the loop turns meanwhile."""
    from transit import pools
    from transit.acl.store import INLINE_PARSE_BYTES

    blocks = [f'path "secret/data/app{i}/*" {{\n  capabilities = ["read", "list"]\n}}\n'
              for i in range(400)]
    text = "".join(blocks)
    assert len(text) > INLINE_PARSE_BYTES

    async def go():
        s, backend = store()
        await s.setup()
        pools.shutdown()
        stored, ticks = await ticks_while(s.put("big", text))
        assert pools._processes is not None and ticks > 0
        assert stored == parse_policy("big", text)
        other = AclPolicyStore(StorageView(backend, "sys/policy/"))
        assert await other.get("big") == stored  # loaded (and parsed) again, off the loop
        assert caps(await other.acl_for(["big"]), "secret/data/app399/x") == ["list", "read"]
        bad = text + 'path "x" { capabilities = ["read"] bogus = 1 }\n'
        with pytest.raises(UserError) as inline:
            parse_policy("big", bad)
        with pytest.raises(UserError) as pooled:
            await s.put("big", bad)
        assert pooled.value.message == inline.value.message
        assert (await s.get("big")) == stored  # nothing half-written

    try:
        asyncio.run(go())
    finally:
        pools.shutdown()


def test_store_root_and_default_protections():
    async def go():
        s, _ = store()
        await s.setup()
        for name in ("root", "ROOT", "response-wrapping"):
            with pytest.raises(UserError) as exc:
                await s.put(name, 'path "x" { capabilities = ["read"] }')
            assert exc.value.message == f'cannot update "{name.lower()}" policy'
        with pytest.raises(UserError) as exc:
            await s.delete("root")
        assert exc.value.message == 'cannot delete "root" policy'
        with pytest.raises(UserError) as exc:
            await s.delete("default")
        assert exc.value.message == "cannot delete default policy"
        root = await s.get("root")
        assert root is not None and root.raw == "" and root.is_root
        with pytest.raises(UserError):
            await s.put("bad", 'path "x" { capabilities = ["nope"] }')
        assert await s.get("bad") is None

    asyncio.run(go())


def test_store_acl_for_caches_and_invalidates():
    async def go():
        s, _ = store()
        await s.setup()
        await s.put("app", 'path "transit/encrypt/*" { capabilities = ["update"] }')
        a1 = await s.acl_for(["default", "app"])
        assert a1 is await s.acl_for(["app", "default"])
        assert a1.allowed("transit/encrypt/k", "update").allowed
        assert a1.allowed("auth/token/lookup-self", "read").allowed
        await s.put("app", 'path "transit/decrypt/*" { capabilities = ["update"] }')
        a2 = await s.acl_for(["default", "app"])
        assert a2 is not a1
        assert not a2.allowed("transit/encrypt/k", "update").allowed
        assert a2.allowed("transit/decrypt/k", "update").allowed
        await s.delete("app")
        a3 = await s.acl_for(["default", "app"])  # a deleted policy counts as empty
        assert not a3.allowed("transit/decrypt/k", "update").allowed
        assert (await s.acl_for(["root"])).allowed("sys/audit", "update").sudo
        s.invalidate()
        assert (await s.acl_for(["default"])).allowed("sys/capabilities-self", "update").allowed

    asyncio.run(go())


def test_store_base64_is_decoded_by_handler_not_store():
    # the store keeps exactly what it is given; base64 decoding is the HTTP handler's job
    from transit.engines.system.policies import _decode_policy

    text = 'path "x" { capabilities = ["read"] }'
    assert _decode_policy(base64.b64encode(text.encode()).decode()) == text
    assert _decode_policy(text) == text


# -- handlers (transit/engines/system/policies.py) over a fake core ------------------------


class _FakeTokens:
    def __init__(self, entries: dict[str, Any]) -> None:
        self.entries = entries

    async def lookup(self, token: str) -> Any:
        return self.entries.get(token)

    async def lookup_accessor(self, accessor: str) -> Any:
        return next((e for e in self.entries.values() if e.accessor == accessor), None)


def _backend() -> Any:
    from types import SimpleNamespace

    s, _ = store()
    asyncio.run(s.setup())
    tok = SimpleNamespace(policies=["default", "app"], accessor="acc1")
    core = SimpleNamespace(policies=s, tokens=_FakeTokens({"t1": tok}))
    return core, tok  # the node's NodeControl port, as far as these handlers use it


def _call(b: Any, fn: Any, path: str, raw: dict[str, Any], fields: Any, token: Any = None):
    from transit.engines.fields import FieldData
    from transit.logical import Request

    req = Request("update", path, raw, None, token=token)
    fd = FieldData(raw, fields)
    fd.validate()
    return asyncio.run(fn(b, req, fd))


def test_handlers_policy_crud_and_legacy_shapes():
    from transit.engines.system import policies as h

    b, _ = _backend()
    text = 'path "transit/*" { capabilities = ["read"] }'
    enc = base64.b64encode(text.encode()).decode()
    assert (
        _call(
            b, h.write_policy, "policies/acl/App", {"name": "App", "policy": enc}, h.POLICY_FIELDS
        )
        is None
    )
    r = _call(b, h.read_policy, "policies/acl/app", {"name": "app"}, h.POLICY_FIELDS)
    assert r.data == {"name": "app", "policy": text}
    r = _call(b, h.list_policies, "policies/acl", {}, {})
    assert r.data == {"keys": ["app", "default", "root"]} and not r.mirror_data
    r = _call(b, h.list_policies_legacy, "policy", {}, {})
    assert r.data == {"keys": ["app", "default", "root"], "policies": ["app", "default", "root"]}
    assert r.mirror_data
    r = _call(b, h.read_policy_legacy, "policy/app", {"name": "app"}, h.LEGACY_POLICY_FIELDS)
    assert r.data == {"name": "app", "rules": text}
    r = _call(
        b,
        h.write_policy_legacy,
        "policy/app",
        {"name": "app", "rules": text},
        h.LEGACY_POLICY_FIELDS,
    )
    assert r.warnings == ["'rules' is deprecated, please use 'policy' instead"]
    assert _call(b, h.read_policy, "policies/acl/nope", {"name": "nope"}, h.POLICY_FIELDS) is None
    with pytest.raises(UserError, match="'policy' parameter not supplied or empty"):
        _call(b, h.write_policy, "policies/acl/x", {"name": "x"}, h.POLICY_FIELDS)
    with pytest.raises(UserError, match='cannot update "root" policy'):
        _call(
            b,
            h.write_policy,
            "policies/acl/root",
            {"name": "root", "policy": text},
            h.POLICY_FIELDS,
        )
    _call(b, h.delete_policy, "policies/acl/app", {"name": "app"}, h.POLICY_FIELDS)
    assert _call(b, h.list_policies, "policies/acl", {}, {}).data == {"keys": ["default", "root"]}


def test_handlers_capabilities():
    from types import SimpleNamespace

    from transit.engines.system import policies as h

    b, tok = _backend()
    asyncio.run(
        b.policies.put("app", 'path "transit/keys/*" { capabilities = ["read", "list"] }')
    )
    F = h.CAPABILITIES_FIELDS
    r = _call(
        b, h.capabilities_self, "capabilities-self", {"paths": ["transit/keys/a", "x"]}, F, tok
    )
    assert r.data == {"transit/keys/a": ["list", "read"], "x": ["deny"]}
    r = _call(b, h.capabilities_self, "capabilities-self", {"path": "transit/keys/a"}, F, tok)
    assert r.data == {"transit/keys/a": ["list", "read"], "capabilities": ["list", "read"]}
    root = SimpleNamespace(policies=["root"])
    r = _call(b, h.capabilities_self, "capabilities-self", {"paths": ["a"]}, F, root)
    assert r.data["capabilities"] == ["root"]
    r = _call(b, h.capabilities, "capabilities", {"token": "t1", "paths": ["transit/keys/a"]}, F)
    assert r.data["capabilities"] == ["list", "read"]
    r = _call(
        b,
        h.capabilities_accessor,
        "capabilities-accessor",
        {"accessor": "acc1", "paths": "x,transit/keys/b"},
        F,
    )
    assert r.data == {"x": ["deny"], "transit/keys/b": ["list", "read"]}
    for fn, raw, msg in [
        (h.capabilities, {"token": "nope", "paths": ["a"]}, "invalid token"),
        (h.capabilities_accessor, {"accessor": "nope", "paths": ["a"]}, "invalid accessor"),
        (h.capabilities_accessor, {"paths": ["a"]}, "missing accessor"),
        (h.capabilities_self, {}, "paths must be supplied"),
    ]:
        with pytest.raises(UserError) as exc:
            _call(b, fn, "capabilities", raw, F, tok)
        assert exc.value.message == msg
    empty = SimpleNamespace(policies=[])
    r = _call(b, h.capabilities_self, "capabilities-self", {"paths": ["a"]}, F, empty)
    assert r.data["a"] == ["deny"]
