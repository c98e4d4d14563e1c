"""Audit devices, HMAC'd entries and the fail-closed broker (spec ha-and-sys-api §4.11)."""

from transit.audit.broker import AUDIT_TABLE_KEY, AuditBroker, AuditEntry
from transit.audit.hashing import Hasher, identified_hmac

__all__ = ["AUDIT_TABLE_KEY", "AuditBroker", "AuditEntry", "Hasher", "identified_hmac"]
