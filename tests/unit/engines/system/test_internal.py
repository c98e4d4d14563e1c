"""`sys/internal/ui/mounts` mount access: Vault's hasMountAccess
(transit/engines/system/internal.py)."""

from __future__ import annotations

import pytest

from transit.acl import ACL, parse_policy
from transit.engines.system.internal import has_mount_access

# -- sys/internal/ui/mounts: Vault's hasMountAccess ------------------------------------------


def _acl(text: str) -> ACL:
    return ACL([parse_policy("p", text)])


@pytest.mark.parametrize("policy, mount, allowed", [
    ('path "secret/data/app/*" { capabilities = ["read"] }', "secret/", True),
    ('path "secret/data/app/*" { capabilities = ["read"] }', "other/", False),
    ('path "secret/data/app" { capabilities = ["read"] }', "secret/", True),
    ('path "secret/*" { capabilities = ["deny"] }', "secret/", False),
    ('path "secret/+/app" { capabilities = ["read"] }', "secret/", True),
    ('path "+/data/*" { capabilities = ["list"] }', "kv/", True),
    ('path "other/+/x" { capabilities = ["read"] }', "secret/", False),
    ('path "sec*" { capabilities = ["read"] }', "secret/", True),
    ('path "transit/encrypt/k" { capabilities = ["update"] }', "transit/", True),
    ('path "auth/token/lookup-self" { capabilities = ["read"] }', "auth/token/", True),
])
def test_has_mount_access(policy: str, mount: str, allowed: bool) -> None:
    assert has_mount_access(_acl(policy), mount) is allowed


def test_root_has_access_everywhere() -> None:
    assert has_mount_access(ACL([parse_policy("root", "")]), "anything/")
    assert not has_mount_access(ACL([]), "anything/")
