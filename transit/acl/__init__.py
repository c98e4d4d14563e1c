"""ACL policies: parsing (policy.py), compiled matching (acl.py) and storage (store.py).

See docs/dev/contracts.md §5.3 and spec ha-and-sys-api §4.9.
"""

from transit.acl.acl import ACL, DENIED, ROOT_DECISION, Decision, requires_sudo
from transit.acl.policy import AclPolicy, PathRule, parse_policy
from transit.acl.store import DEFAULT_POLICY, AclPolicyStore, sanitize_name

__all__ = [
    "ACL",
    "DEFAULT_POLICY",
    "DENIED",
    "ROOT_DECISION",
    "AclPolicy",
    "AclPolicyStore",
    "Decision",
    "PathRule",
    "parse_policy",
    "requires_sudo",
    "sanitize_name",
]
