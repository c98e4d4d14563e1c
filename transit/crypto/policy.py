"""`Policy`: one named key with its versions (spec §2), its lifecycle and persistence.

The live `keys` map holds versions >= min_decryption_version; `archive` holds every version
still available, at index `version - min_available_version` (index 0 is an empty placeholder
while min_available_version is 0). `_sync()` re-establishes that after every change, like
Vault's handleArchiving. Persistence is split like Vault's storage: `dumps()` is the policy JSON
(live keys) and `dumps_archive()` the archive JSON.

Backup/restore (`BackupMixin`, crypto/backup.py), BYOK import (`ImportMixin`,
crypto/importing.py), the crypto operations (`Operations`) and key read/export
(`KeyInfoMixin`) are mixed in from their own modules.

Copying: `copy.deepcopy(policy)` is cheap; KeyEntries are immutable and shared (with caches).
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timedelta
from typing import Any

from transit.crypto.backup import BackupMixin
from transit.crypto.encoding import b64decode, dump_json, now_utc
from transit.crypto.importing import ImportMixin
from transit.crypto.kdf import KDF_HKDF_SHA256
from transit.crypto.keyentry import KeyEntry
from transit.crypto.keyinfo import KeyInfoMixin
from transit.crypto.keytypes import (
    HMAC_MAX_KEY_SIZE,
    HMAC_MIN_KEY_SIZE,
    KeyType,
    check_auto_rotate,
)
from transit.crypto.operations import Operations
from transit.crypto.signing import SignResult
from transit.errors import InternalError, TransitError, UserError
from transit.gocompat import format_time

__all__ = ["KeyEntry", "Policy", "SignResult"]

_NS = 1_000_000_000
_KNOWN = ("name", "key", "key_size", "keys", "derived", "kdf", "convergent_encryption",
          "exportable", "min_decryption_version", "min_encryption_version", "latest_version",
          "archive_version", "archive_min_version", "min_available_version", "deletion_allowed",
          "convergent_version", "type", "backup_info", "restore_info", "allow_plaintext_backup",
          "version_template", "storage_prefix", "auto_rotate_period", "Imported",
          "AllowImportedKeyRotation")


class Policy(Operations, KeyInfoMixin, BackupMixin, ImportMixin):
    def __init__(self, name: str, key_type: KeyType) -> None:
        self.name = name
        self.type = key_type
        self.derived = False
        self.kdf = 0
        self.convergent_encryption = False
        self.convergent_version = 0
        self.exportable = False
        self.allow_plaintext_backup = False
        self.deletion_allowed = False
        self.min_decryption_version = 1
        self.min_encryption_version = 0
        self.min_available_version = 0
        self.latest_version = 0
        self.archive_version = 0
        self.archive_min_version = 0
        self.auto_rotate_period = 0  # seconds
        self.key_size = 0
        self.imported = False
        self.allow_imported_key_rotation = False
        self.backup_info: dict | None = None
        self.restore_info: dict | None = None
        self.version_template = ""
        self.storage_prefix = ""
        self.keys: dict[int, KeyEntry] = {}
        self.archive: list[KeyEntry] = []
        self.extra: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, {self.type}, latest={self.latest_version})"

    def __deepcopy__(self, memo: dict) -> Policy:
        new = copy.copy(self)
        new.keys = dict(self.keys)
        new.archive = list(self.archive)
        new.extra = copy.deepcopy(self.extra)
        new.backup_info = copy.copy(self.backup_info)
        new.restore_info = copy.copy(self.restore_info)
        return new

    # --- creation / rotation ------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, key_type: KeyType | str, *, derived: bool = False,
               convergent: bool = False, exportable: bool = False,
               allow_plaintext_backup: bool = False, auto_rotate_period: int = 0,
               key_size: int = 0, now: datetime | None = None) -> Policy:
        """A new key with version 1 (§4.1): UserError for the 400s, InternalError for the 500s."""
        check_auto_rotate(auto_rotate_period)
        if convergent and not derived:
            raise UserError("convergent encryption requires derivation to be enabled")
        t = key_type if isinstance(key_type, KeyType) else KeyType.parse(key_type)
        if key_size:
            if t is not KeyType.HMAC:
                raise UserError(f"key_size is not valid for algorithm {t}")
            if not HMAC_MIN_KEY_SIZE <= key_size <= HMAC_MAX_KEY_SIZE:
                raise UserError(f"invalid key_size {key_size}")
        if (t.is_ecdsa or t.is_rsa or t is KeyType.HMAC) and (derived or convergent):
            raise InternalError("key derivation and convergent encryption not supported for "
                                f"keys of type {t}")
        if t is KeyType.ED25519 and convergent:
            raise InternalError(f"convergent encryption not supported for keys of type {t}")
        p = cls(name, t)
        p.derived = derived
        if derived:
            p.kdf = KDF_HKDF_SHA256
            if convergent:
                p.convergent_encryption = True
                p.convergent_version = -1
        p.exportable = exportable
        p.allow_plaintext_backup = allow_plaintext_backup
        p.auto_rotate_period = auto_rotate_period
        p.key_size = key_size
        p._rotate_in_memory(now)
        return p

    def _rotate_in_memory(self, now: datetime | None) -> None:
        if self.type is KeyType.HMAC and not (
                HMAC_MIN_KEY_SIZE <= self.key_size <= HMAC_MAX_KEY_SIZE):
            raise InternalError("invalid key size for HMAC key, must be between 32 and 512 bytes")
        e = KeyEntry.generate(self.type, now or now_utc(), self.key_size)
        if self.convergent_encryption and (self.convergent_version == -1
                                           or self.convergent_version > 1):
            e.convergent_version = 3
        self._add_version(e)

    def _add_version(self, e: KeyEntry) -> None:
        self.latest_version += 1
        self.keys[self.latest_version] = e
        if self.min_decryption_version == 0:
            self.min_decryption_version = 1
        self._sync()

    def rotate(self, now: datetime | None = None) -> None:
        if self.imported and not self.allow_imported_key_rotation:
            raise InternalError(f"imported key {self.name} does not allow rotation within Vault")
        self._rotate_in_memory(now)
        self.imported = False

    def needs_auto_rotate(self, now: datetime | None = None) -> bool:
        if self.auto_rotate_period <= 0:
            return False
        if self.imported and not self.allow_imported_key_rotation:
            return False
        latest = self.keys.get(self.latest_version)
        if latest is None:
            return False
        due = latest.creation_datetime() + timedelta(seconds=self.auto_rotate_period)
        return (now or now_utc()) > due

    # --- configuration --------------------------------------------------------------------------
    def update_config(self, *, min_decryption_version: int | None = None,
                      min_encryption_version: int | None = None,
                      deletion_allowed: bool | None = None, exportable: bool | None = None,
                      allow_plaintext_backup: bool | None = None,
                      auto_rotate_period: int | None = None) -> list[str]:
        """`keys/:name/config` (§4.5). Atomic: on error nothing changes. Returns warnings."""
        warnings: list[str] = []
        mdv, mev = self.min_decryption_version, self.min_encryption_version
        changed = False
        if min_decryption_version is not None:
            v = min_decryption_version
            if v < 0:
                raise UserError("min decryption version cannot be negative")
            if v == 0:
                v = 1
                warnings.append("since Vault 0.3, transit key numbering starts at 1; forcing "
                                "minimum to 1")
            if v != mdv:
                if v > self.latest_version:
                    raise UserError(f"cannot set min decryption version of {v}, latest key "
                                    f"version is {self.latest_version}")
                mdv, changed = v, True
        if min_encryption_version is not None:
            v = min_encryption_version
            if v < 0:
                raise UserError("min encryption version cannot be negative")
            if v != mev:
                if v > self.latest_version:
                    raise UserError(f"cannot set min encryption version of {v}, latest key "
                                    f"version is {self.latest_version}")
                mev, changed = v, True
        if mev > 0 and mev < mdv:
            raise UserError(
                "cannot set min encryption/decryption values; min encryption version of "
                f"{mev} must be greater than or equal to min decryption version of {mdv}")
        deletion = self.deletion_allowed
        if deletion_allowed is not None and deletion_allowed != deletion:
            deletion, changed = deletion_allowed, True
        export = self.exportable or bool(exportable)
        backup = self.allow_plaintext_backup or bool(allow_plaintext_backup)
        changed = changed or export != self.exportable or backup != self.allow_plaintext_backup
        period = self.auto_rotate_period
        if auto_rotate_period is not None:
            check_auto_rotate(auto_rotate_period)
            if auto_rotate_period != period:
                period, changed = auto_rotate_period, True
        if not changed:
            return warnings
        if self.min_available_version > mev:
            raise UserError("min encryption version should not be less than min available version")
        if self.min_available_version > mdv:
            raise UserError("min decryption version should not be less then min available version")
        self.min_decryption_version, self.min_encryption_version = mdv, mev
        self.deletion_allowed, self.exportable = deletion, export
        self.allow_plaintext_backup, self.auto_rotate_period = backup, period
        self._sync()
        return warnings

    def trim(self, min_available_version: int) -> None:
        """`keys/:name/trim` (§4.7): delete archived versions below it for good."""
        v = min_available_version
        if v < self.min_available_version:
            raise UserError("minimum available version cannot be decremented")
        if self.min_encryption_version == 0:
            raise UserError("minimum available version cannot be set when minimum encryption "
                            "version is not set")
        if self.min_decryption_version == 0:
            raise UserError("minimum available version cannot be set when minimum decryption "
                            "version is not set")
        if v > self.min_encryption_version:
            raise UserError("minimum available version cannot be greater than minmum encryption "
                            "version")
        if v > self.min_decryption_version:
            raise UserError("minimum available version cannot be greater than minimum decryption "
                            "version")
        if v < 0:
            raise UserError("minimum available version cannot be negative")
        if v == 0:
            raise UserError("minimum available version should be positive")
        self.min_available_version = v
        self._sync()

    # --- archive rule -------------------------------------------------------------------------
    def _sync(self) -> None:
        mav = self.min_available_version
        if self.archive_min_version < mav:  # trim
            self.archive = self.archive[mav - self.archive_min_version:]
            self.archive_min_version = mav
        need = self.latest_version - mav + 1
        if len(self.archive) < need:
            self.archive.extend(KeyEntry() for _ in range(need - len(self.archive)))
        for v in range(max(self.archive_version + 1, mav), self.latest_version + 1):
            if v in self.keys:
                self.archive[v - mav] = self.keys[v]
        self.archive_version = self.latest_version
        for v in range(self.min_decryption_version, self.latest_version + 1):
            if v not in self.keys:
                idx = v - mav
                if idx < 0 or idx >= len(self.archive):
                    raise InternalError(f"key version {v} is missing from the archive")
                self.keys[v] = self.archive[idx]
        for v in [v for v in self.keys if v < self.min_decryption_version or
                  v > self.latest_version]:
            del self.keys[v]

    # --- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.key_size:
            d["key_size"] = self.key_size
        d.update({
            "keys": {str(v): e.to_json() for v, e in sorted(self.keys.items())},
            "derived": self.derived,
            "kdf": self.kdf,
            "convergent_encryption": self.convergent_encryption,
            "exportable": self.exportable,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "latest_version": self.latest_version,
            "archive_version": self.archive_version,
            "archive_min_version": self.archive_min_version,
            "min_available_version": self.min_available_version,
            "deletion_allowed": self.deletion_allowed,
            "convergent_version": self.convergent_version,
            "type": self.type.vault_int,
            "backup_info": self.backup_info,
            "restore_info": self.restore_info,
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "version_template": self.version_template,
            "storage_prefix": self.storage_prefix,
            "auto_rotate_period": self.auto_rotate_period * _NS,
            "Imported": self.imported,
            "AllowImportedKeyRotation": self.allow_imported_key_rotation,
        })
        d.update(self.extra)
        return d

    def archive_json(self) -> dict[str, Any]:
        return {"keys": [e.to_json() for e in self.archive]}

    def dumps(self) -> bytes:
        return dump_json(self.to_json())

    def dumps_archive(self) -> bytes:
        return dump_json(self.archive_json())

    @classmethod
    def from_json(cls, d: dict[str, Any], archive: dict[str, Any] | None) -> Policy:
        """Build from Vault's policy JSON (+ archive JSON), applying Vault's load upgrades."""
        if not isinstance(d, dict):
            raise ValueError("policy is not an object")
        p = cls(str(d.get("name") or ""), KeyType.from_vault_int(d.get("type", 0)))
        p.key_size = int(d.get("key_size") or 0)
        p.derived = bool(d.get("derived"))
        p.kdf = int(d.get("kdf") or 0)
        p.convergent_encryption = bool(d.get("convergent_encryption"))
        p.convergent_version = int(d.get("convergent_version") or 0)
        p.exportable = bool(d.get("exportable"))
        p.allow_plaintext_backup = bool(d.get("allow_plaintext_backup"))
        p.deletion_allowed = bool(d.get("deletion_allowed"))
        p.min_decryption_version = int(d.get("min_decryption_version") or 0)
        p.min_encryption_version = int(d.get("min_encryption_version") or 0)
        p.min_available_version = int(d.get("min_available_version") or 0)
        p.latest_version = int(d.get("latest_version") or 0)
        p.archive_version = int(d.get("archive_version") or 0)
        p.archive_min_version = int(d.get("archive_min_version") or 0)
        p.auto_rotate_period = int(d.get("auto_rotate_period") or 0) // _NS
        p.imported = bool(d.get("Imported"))
        p.allow_imported_key_rotation = bool(d.get("AllowImportedKeyRotation"))
        p.backup_info = d.get("backup_info")
        p.restore_info = d.get("restore_info")
        p.version_template = d.get("version_template") or ""
        p.storage_prefix = d.get("storage_prefix") or ""
        p.extra = {k: v for k, v in d.items() if k not in _KNOWN}
        p.keys = {int(k): KeyEntry.from_json(v) for k, v in (d.get("keys") or {}).items()}
        if d.get("key") and not p.keys:  # pre-0.3 single-key policy
            now = now_utc()
            p.keys = {1: KeyEntry(key=b64decode(d["key"]), time=format_time(now),
                                  creation_time=int(now.timestamp()))}
        if p.latest_version == 0 and p.keys:
            p.latest_version = len(p.keys)
        if p.latest_version < 1:
            raise ValueError("policy has no key versions")
        if p.min_decryption_version == 0:
            p.min_decryption_version = 1
        if p.convergent_encryption and p.convergent_version == 0:
            p.convergent_version = 1
        if archive and archive.get("keys") is not None:
            p.archive = [KeyEntry.from_json(e) for e in archive["keys"]]
        else:  # no archive: rebuild it from the live keys
            p.archive, p.archive_version = [], 0
            p.archive_min_version = p.min_available_version
        p._sync()
        latest = p.keys.get(p.latest_version)
        if latest is not None and not latest.hmac_key and p.type is not KeyType.HMAC:
            fixed = KeyEntry.from_json(latest.to_json())
            fixed.hmac_key = os.urandom(32)
            p.keys[p.latest_version] = fixed
            p.archive_version = p.latest_version - 1
            p._sync()
        return p

    @classmethod
    def loads(cls, policy: bytes, archive: bytes | None) -> Policy:
        try:
            return cls.from_json(json.loads(policy), json.loads(archive) if archive else None)
        except TransitError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise InternalError(f"failed to load policy: {e}") from None

