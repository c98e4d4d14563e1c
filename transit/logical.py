"""The logical request vocabulary every layer shares (Vault's `sdk/logical`).

The HTTP layer turns a request into a `Request` (operation, path relative to the mount, raw
data), the core runs it through token, ACL and audit to an engine, and the engine answers
with a `Response` (or raises an exception from `transit.errors`). Tokens, ACL, audit, the
API and the engines all speak these types; nothing here imports any of them (the token
settings a `Login` carries are typed from transit/tokenutil.py, for the checker only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transit.tokenutil import TokenParams

# Operations, as Vault names them. POST/PUT map to UPDATE (or CREATE after an existence
# check that finds nothing), GET to READ, DELETE to DELETE, LIST / GET?list=true to LIST.
READ = "read"
UPDATE = "update"
CREATE = "create"
DELETE = "delete"
LIST = "list"
PATCH = "patch"


@dataclass(slots=True)
class Request:
    operation: str
    path: str  # relative to the mount, e.g. "encrypt/my-key"
    data: dict[str, Any]
    storage: Any  # the mount's StorageView (Backend protocol)
    mount_path: str = ""  # e.g. "transit/"
    params: dict[str, str] = field(default_factory=dict)  # captured from the path
    client_token: str = ""
    token: Any = None  # the caller's TokenEntry (None only on unauthenticated paths)
    id: str = ""  # request id (UUID), also in the response envelope and audit log
    remote_addr: str = ""
    remote_port: int = 0
    mount_type: str = ""
    mount_accessor: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    # The TLS client certificate chain (PEM, leaf first; [] when none was presented); None
    # when the request did not come over TLS. Read by the cert auth method's login.
    client_certs: list[str] | None = None
    perf_standby: bool = False  # served by a performance standby (read-only storage)
    # The mount's effective max lease TTL in seconds (its tuned max_lease_ttl, else the
    # server's): Vault's SystemView.MaxLeaseTTL, which AppRole caps secret-ID TTLs with.
    max_lease_ttl: int = 0
    index_header: str = ""  # X-Vault-Index for the response, set when the request wrote
    # The engine's private per-request cache (transit/engines/framework.py): the matched
    # (Route, path captures), set by Engine.resolve, and the (FieldData, replaced names) built
    # by Engine.exists and reused by Engine.handle. Typed loosely so this module stays below
    # the engines.
    matched: tuple[Any, dict[str, str]] | None = None
    fields: tuple[Any, list[str]] | None = None


# `Response.lease_duration` meaning "the mount's default_lease_ttl, else the server's" (Vault's
# SystemView.DefaultLeaseTTL), which only the core knows.
MOUNT_DEFAULT_TTL = -1


@dataclass(slots=True)
class Response:
    data: dict[str, Any] | None = None
    warnings: list[str] | None = None
    # An explicit HTTP status for a response whose body is still the full envelope
    # (batch partial failures, spec §5). None means: the usual 200/204.
    status: int | None = None
    # Older sys/* reads repeat the data keys at the top level of the body (sys/mounts).
    mirror_data: bool = False
    auth: dict[str, Any] | None = None  # the envelope's "auth" block (token creation)
    # A login handler's token description: the core creates the token and fills `auth`
    # (transit/engines/authmethod.py, NodeLogin.complete_login). Never rendered itself.
    login: Login | None = None
    wrap_info: dict[str, Any] | None = None
    lease_id: str = ""
    lease_duration: int = 0  # MOUNT_DEFAULT_TTL: the core fills in the mount's default
    renewable: bool = False
    # Set by handlers whose write standbys must see before the client is told it happened
    # (key rotation): the core waits for the storage replicas (Redis WAIT) first.

    def add_warning(self, message: str) -> None:
        if self.warnings is None:
            self.warnings = []
        self.warnings.append(message)


@dataclass(slots=True)
class Login:
    """A successful login, before its token exists."""

    token: TokenParams  # the role's token_* settings (policies, TTLs, type, bound CIDRs...)
    display_name: str = ""  # the core prepends the mount path: `userpass-alice`
    metadata: dict[str, str] | None = None  # the token's meta and the auth block's metadata
    alias_name: str = ""  # the identity alias (username, role_id, CN, JWT user claim)
    alias_metadata: dict[str, str] = field(default_factory=dict)
    # Names of external groups the method asserts (JWT groups claim), for the identity store.
    # None: the method asserts no groups (memberships untouched); a list, even empty: the
    # entity's external groups on this mount become exactly those named.
    group_aliases: list[str] | None = None
    renewable: bool = True  # Vault's LeaseOptions.Renewable (periodic tokens renew anyway)
    # Refuse the login (403 permission denied) when the client's address is outside
    # `token.bound_cidrs` (userpass, cert, jwt do; approle checks its own secret-ID CIDRs).
    check_bound_cidrs: bool = True
    # Method-private data kept with the token for a later renewal check (Vault's
    # InternalData): JSON-serialisable, never shown to clients; `renew_login` reads it back
    # as `token.internal_data`.
    internal_data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
