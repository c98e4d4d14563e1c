"""A login and the identity store together (spec auth-api §6.6, §6.7, §6.8): a userpass
login creates (then reuses) its entity and alias, the token carries the entity, the entity's
and its groups' policies become identity policies, and one templated policy gives each
application its own transit key path. Real hvac against the session server."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import hvac
import pytest
from hvac.exceptions import Forbidden

PLAINTEXT = base64.b64encode(b"per-app secret").decode()


def _n(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def userpass(client: hvac.Client) -> Iterator[tuple[str, str]]:
    """(mount path, mount accessor) of a fresh userpass mount."""
    path = _n("up")
    client.sys.enable_auth_method("userpass", path=path)
    accessor = client.sys.list_auth_methods()["data"][f"{path}/"]["accessor"]
    yield path, accessor
    client.sys.disable_auth_method(path)


def _login(server_url: str, mount: str, user: str) -> tuple[hvac.Client, dict[str, object]]:
    app = hvac.Client(url=server_url)
    auth = app.auth.userpass.login(user, "pw", mount_point=mount)["auth"]
    app.token = auth["client_token"]
    return app, auth


def test_login_creates_then_reuses_its_entity(client: hvac.Client,
                                              userpass: tuple[str, str]) -> None:
    mount, accessor = userpass
    client.auth.userpass.create_or_update_user("alice", "pw", policies="default",
                                               mount_point=mount)
    _, first = _login(client.url, mount, "alice")
    entity_id = first["entity_id"]
    assert entity_id and "identity_policies" not in first  # omitempty: none yet
    entity = client.secrets.identity.read_entity(entity_id)["data"]
    assert [(a["name"], a["mount_accessor"], a["mount_type"], a["mount_path"])
            for a in entity["aliases"]] == [("alice", accessor, "userpass", f"auth/{mount}/")]

    # the entity's own policies and a group's policies become identity policies
    group = _n("grp")
    client.secrets.identity.update_entity(entity_id, policies=["entpol"])
    client.secrets.identity.create_or_update_group(name=group, policies=["grppol"],
                                                   member_entity_ids=[entity_id])
    app, second = _login(client.url, mount, "alice")
    assert second["entity_id"] == entity_id  # reused, not a second entity
    assert second["identity_policies"] == ["entpol", "grppol"]
    assert second["token_policies"] == ["default"]
    assert second["policies"] == ["default", "entpol", "grppol"]
    me = app.auth.token.lookup_self()["data"]
    assert me["entity_id"] == entity_id and me["identity_policies"] == ["entpol", "grppol"]
    client.secrets.identity.delete_group_by_name(group)
    client.secrets.identity.delete_entity(entity_id)


def test_templated_policy_gives_each_app_its_own_key(client: hvac.Client,
                                                     userpass: tuple[str, str]) -> None:
    """One policy for every application: encrypt under the key named by the entity's `app`
    metadata, or by the login's alias name; another application's key is refused."""
    mount, accessor = userpass
    transit = _n("tr")
    client.sys.enable_secrets_engine("transit", path=transit)
    policy = _n("per-app")
    client.sys.create_or_update_policy(policy, f'''
path "{transit}/encrypt/{{{{identity.entity.metadata.app}}}}" {{ capabilities = ["update"] }}
path "{transit}/decrypt/{{{{identity.entity.aliases.{accessor}.name}}}}" {{
  capabilities = ["update"]
}}
''')
    apps = {}
    for user in ("app1", "app2"):
        client.auth.userpass.create_or_update_user(user, "pw", policies=policy,
                                                   mount_point=mount)
        client.secrets.transit.create_key(f"{user}-key", mount_point=transit)
        client.secrets.transit.create_key(user, mount_point=transit)
        app, auth = _login(client.url, mount, user)
        client.secrets.identity.update_entity(auth["entity_id"],
                                              metadata={"app": f"{user}-key"})
        apps[user] = app
    try:
        one, two = apps["app1"], apps["app2"]
        ct = one.secrets.transit.encrypt_data("app1-key", PLAINTEXT, mount_point=transit)
        assert ct["data"]["ciphertext"].startswith("vault:v1:")
        with pytest.raises(Forbidden):
            one.secrets.transit.encrypt_data("app2-key", PLAINTEXT, mount_point=transit)
        with pytest.raises(Forbidden):
            two.secrets.transit.encrypt_data("app1-key", PLAINTEXT, mount_point=transit)
        # the alias-name template: each user decrypts under the key named after itself
        own = client.secrets.transit.encrypt_data("app2", PLAINTEXT, mount_point=transit)
        out = two.secrets.transit.decrypt_data("app2", own["data"]["ciphertext"],
                                               mount_point=transit)
        assert out["data"]["plaintext"] == PLAINTEXT
        with pytest.raises(Forbidden):
            one.secrets.transit.decrypt_data("app2", own["data"]["ciphertext"],
                                             mount_point=transit)
    finally:
        client.sys.disable_secrets_engine(transit)
