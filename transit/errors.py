"""The exception tree. Layers raise these; `transit/api/wire.py` (`_TABLE`, `error_response`)
maps them to HTTP, in that one place.

No HTTP status codes live here: each class names *what went wrong*; the API layer decides how
that looks on the wire (Vault's conventions, spec §1.4). The whole tree, with the status
`error_response` gives each (a subclass answers like its parent unless listed itself;
"multierror": the message wrapped as Go's go-multierror text):

    TransitError                 base of every error raised on purpose (unlisted: 500, multierror)
    ├── UserError                the request is wrong (Vault: logical.ErrorResponse)        400
    │   ├── CryptoError          bad ciphertext / signature / HMAC / base64 / version / tag  400
    │   │   └── Base64Error      Go's "illegal base64 data at input byte N" (crypto/encoding) 400
    │   ├── InvalidCredentials   a login's credentials were wrong: counts toward user lockout 400
    │   ├── OptionError          a per-item option the key cannot take; leaves a batch at 200 400
    │   └── InvalidKey           unseal: the combined key does not open the stored keys      400
    ├── InternalError            plain handler error                              500, multierror
    ├── LoginFailed              a plain error from a login handler (Vault: unwrapped)       500
    ├── LoginUnsupported         a login path asked with another verb (unwrapped)            405
    │   └── AuditFailed          audit devices enabled, none recorded the entry; the body says
    │                            only "internal error" (fail closed)                         500
    ├── PermissionDenied         missing/unknown token                                       403
    │   └── CapabilityDenied     a valid token lacks the capability or sudo       403, multierror
    ├── UnsupportedPath          no route inside a mount                          404, multierror
    ├── NoHandler                no mount for the path                                       404
    ├── NotFound                 nothing at this path: 404 with `{"errors":[]}`              404
    ├── UnsupportedOperation     route exists, not for this verb                  405, multierror
    ├── RequestTooLarge          body over max_request_size                                  413
    ├── Sealed                   the barrier is sealed                                       503
    ├── StandbyError             an active-node-only operation asked of a standby            500
    ├── StorageError             the backend failed                               500, multierror
    │   ├── Fenced               this node no longer holds the HA lock; nothing written      503
    │   │   └── NotActive        refused before any work: not (or no longer) the active node;
    │   │                        a forwarded one is marked so the standby re-sends it     503
    │   ├── Conflict             a compare-and-set lost to another writer; nothing written   503
    │   ├── OutcomeUnknown       the write was sent but its reply was lost                   503
    │   └── Unavailable          storage could not be reached; nothing was sent              503
    ├── ReplicationUnconfirmed   applied on the primary, replicas did not confirm in time    503
    ├── ForwardToActive          a performance standby hands the request to the active node;
    │                            caught by the API layer, never rendered
    ├── ConfigError              invalid server configuration (start-up)          500, multierror
    ├── OperatorError            rekey / generate-root, carrying Vault's status (transit/rekey.py;
    │                            answered by engines/system/operator.py)
    └── ForwardingError          forwarding to the active node failed (transit/cluster/forward.py;
                                 answered by the forwarding gate, api/forwarding.py)
"""

from __future__ import annotations


class TransitError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(TransitError):
    """The caller sent something invalid; the message is shown verbatim."""


class InvalidCredentials(UserError):
    """A login's credentials were wrong (Vault's ErrInvalidCredentials: a wrong password, an
    unknown secret ID). 400 with the message; the core counts it toward user lockout."""


class CryptoError(UserError):
    """Ciphertext, signature, HMAC, base64 or version problems in the crypto core."""


class OptionError(UserError):
    """A per-item option the key cannot take: a padding scheme (unknown, or a non-RSA key),
    associated data for a non-AEAD key. Vault's encrypt/decrypt batch loops record it without
    flagging a user error, so on its own it leaves a batch at 200; a single request is a 400."""


class InternalError(TransitError):
    """A plain error from a handler; Vault wraps these as a 500 multierror."""


class LoginFailed(TransitError):
    """A plain (non-user) error from an auth method's login handler: Vault answers these 500
    with the message unwrapped (`missing password`, `missing role_id`; spec auth-api §1.6).
    The core turns a login handler's InternalError into this."""


class LoginUnsupported(TransitError):
    """A login path asked with a verb it does not serve (GET): 405, unwrapped."""

    def __init__(self, message: str = "unsupported operation") -> None:
        super().__init__(message)


class PermissionDenied(TransitError):
    def __init__(self, message: str = "permission denied") -> None:
        super().__init__(message)


class CapabilityDenied(PermissionDenied):
    """A valid token whose policies lack the capability (or `sudo`): Vault appends the
    error to a multierror, so the text is wrapped (spec auth-api §0, probed on OpenBao),
    unlike a missing or unknown token's plain `permission denied`."""


class UnsupportedPath(TransitError):
    def __init__(self, message: str = "unsupported path") -> None:
        super().__init__(message)


class NoHandler(TransitError):
    """No mount serves this path."""


class UnsupportedOperation(TransitError):
    def __init__(self, message: str = "unsupported operation") -> None:
        super().__init__(message)


class RequestTooLarge(TransitError):
    def __init__(self, message: str = "http: request body too large") -> None:
        super().__init__(message)


class Sealed(TransitError):
    def __init__(self, message: str = "Vault is sealed") -> None:
        super().__init__(message)


class StorageError(TransitError):
    """The storage backend failed (I/O, connection, corruption)."""


class ConfigError(TransitError):
    """The server configuration file or flags are invalid."""


class InvalidKey(UserError):
    """Unseal failed: the combined key (or root key) does not open the stored keys."""

    def __init__(self, message: str = "Unseal failed, invalid key") -> None:
        super().__init__(message)


class AuditFailed(InternalError):
    """Fail closed: audit devices are enabled and none could record the entry.

    The API layer shows it as 500 `{"errors":["internal error"]}` (Vault's ErrInternalError);
    the message here is for the server log only.
    """

    def __init__(self, message: str = "no audit backend succeeded in logging the request") -> None:
        super().__init__(message)


class NotFound(TransitError):
    """Nothing at this path, for operations that answer 404 `{"errors":[]}` explicitly
    (reads and lists say so by returning nothing; e.g. a KV patch of a missing secret)."""


class Fenced(StorageError):
    """A storage write refused because this node no longer holds the HA lock (its epoch is
    stale): nothing was written. The node must stop acting as active."""


class NotActive(Fenced):
    """The request reached a node that is not (or no longer) the active node and was refused
    before any work was done. On the cluster port the answer carries a typed header
    (`NOT_ACTIVE_HEADER`, transit/api/wire.py), so the forwarding standby looks up the new
    active node and sends the request again: safe, since nothing happened here. A request
    refused only after its handler ran (the lock was lost meanwhile) is a plain `Fenced`
    without the header: its write may be durable, so it is never re-sent."""


class Conflict(StorageError):
    """A guarded write (compare-and-set on an entry's stored version) found the entry
    changed by another writer, or claimed by one (`claimed`): nothing was written. Callers
    re-read storage and retry; one that gives up reports 503 (safe to retry: nothing was
    applied)."""

    def __init__(self, message: str = "", *, claimed: bool = False) -> None:
        super().__init__(message)
        self.claimed = claimed


class OutcomeUnknown(StorageError):
    """A write was sent to storage but no reply came back (timeout, lost connection): it
    may or may not have been applied. Never retried blindly; the client is told (503)."""


class Unavailable(StorageError):
    """Storage could not be reached (connection refused, no primary): the operation was
    not sent, so nothing changed. 503: safe to retry."""


class StandbyError(TransitError):
    """An operation only the active node can do, asked of a standby (500, plain message)."""


class ForwardToActive(TransitError):
    """A performance standby tried to write storage (or met a key version it does not know):
    the whole request goes to the active node instead. Never rendered to a client."""


class ReplicationUnconfirmed(TransitError):
    """A write succeeded on the active node but the storage replicas did not confirm it in
    time, so the client is told the outcome is unknown (503) rather than that it succeeded."""
