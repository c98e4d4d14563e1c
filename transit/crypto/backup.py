"""Backup and restore of a key (spec §4.18-4.19), mixed into `Policy`.

A backup blob is the base64 of `{"policy": <policy JSON>, "archived_keys": <archive JSON>}`
and a newline, as Vault writes it. Every failure is Vault's InternalError (a 500).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from transit.crypto.encoding import b64decode, b64encode, dump_json, now_utc
from transit.errors import InternalError, TransitError
from transit.gocompat import format_time


class BackupMixin:
    """`backup` and `restore`; relies on the Policy attributes and methods declared below (it
    does not import `Policy`, which mixes it in)."""

    name: str
    exportable: bool
    allow_plaintext_backup: bool
    latest_version: int
    backup_info: dict | None
    restore_info: dict | None

    if TYPE_CHECKING:
        def to_json(self) -> dict[str, Any]: ...
        def archive_json(self) -> dict[str, Any]: ...
        @classmethod
        def from_json(cls, d: dict[str, Any], archive: dict[str, Any] | None) -> Self: ...

    def backup(self, now: datetime | None = None) -> str:
        """The `backup/:name` blob; records backup_info. InternalError (500) per §4.18."""
        if not self.exportable:
            raise InternalError("exporting is disallowed on the policy")
        if not self.allow_plaintext_backup:
            raise InternalError("plaintext backup is disallowed on the policy")
        self.backup_info = {"time": format_time(now or now_utc()),
                            "version": self.latest_version}
        blob = {"policy": self.to_json(), "archived_keys": self.archive_json()}
        return b64encode(dump_json(blob) + b"\n")

    @classmethod
    def restore(cls, blob: str, name: str | None = None, now: datetime | None = None) -> Self:
        """Parse a backup blob (§4.19); sets restore_info. InternalError on a bad blob."""
        try:
            raw = b64decode(blob)
        except TransitError as e:
            raise InternalError(e.message) from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("policy"), dict):
                raise ValueError("backup has no policy")
            p = cls.from_json(data["policy"], data.get("archived_keys"))
        except TransitError as e:
            raise InternalError(e.message) from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise InternalError(f"failed to restore the policy: {e}") from None
        if name:
            p.name = name
        p.restore_info = {"time": format_time(now or now_utc()), "version": p.latest_version}
        return p
