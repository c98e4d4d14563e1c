"""The identity store: entities, their aliases, groups and group aliases (Vault's
vault/identity_store*.go), the identity policies of a token's entity, and ACL policy
templating (Vault's sdk/helper/identitytpl). The HTTP surface is transit/engines/identity/.
"""
