"""Seals: how a node obtains the root key that opens the barrier (spec §4.3-4.5, §5.1).

**Shamir** (the default, no `seal` stanza). Init generates the root key and a separate
32-byte unseal key (KEK); the KEK is split into `secret_shares` shares (`transit.crypto.shamir`;
with one share the share *is* the KEK). The root key, encrypted under the KEK, is stored outside
the barrier at `core/hsm/barrier-unseal-keys`; the seal configuration is stored in plaintext at
`core/seal-config`. Unsealing is per node: shares arrive one by one (`progress`, with a nonce
that names the attempt); once `threshold` distinct shares are in, they are combined and must
open the stored root key, else `Unseal failed, invalid key` and the progress starts over.

**Static** (`seal "static" { current_key = "..." }`, OpenBao's syntax). A 32-byte key given to
the server plays the KEK's part and the node unseals itself at start (`auto_unseal`). Like
Vault's auto seals, init then takes `recovery_shares`/`recovery_threshold`: a separate
recovery key is split into shares (returned as the init "keys"; the core's route renames them)
and kept inside the barrier at `core/recovery-key`, its config in plaintext at
`core/recovery-config`. `current_key` is one of:

- `file:///path`: the file holds the 32 raw bytes, or their hex (64 chars) or base64 text;
- `env://NAME`: the environment variable holds the hex or base64 text;
- the hex or base64 text itself.

A store initialised under one seal type is not opened with the other (no seal migration).

**Rekey** (`sys/rekey`, `transit/rekey.py`) replaces the KEK and the root key (`rekey`): the
new root key, wrapped under the new KEK, the new seal configuration, the keyring re-encrypted
under the new root key and the KEK (inside the barrier, `core/shamir-kek`, as Vault) are one
guarded commit. Other processes notice on their own: a sealed node re-reads the seal
configuration and the wrapped root key for every unseal attempt, an unsealed one re-reads the
configuration at most every `CONFIG_TTL` seconds (`sys/seal-status`), and the barrier follows
the new root key through `core/master`.

Modules: `stored` (what the seal stores: paths, `SealConfig`, the wrapped root key),
`manager` (`SealManager`: init, unseal, seal, rekey for one node), `static` (the static seal
key from the server configuration).
"""
