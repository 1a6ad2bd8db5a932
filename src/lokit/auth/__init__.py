"""Authorization: casbin ACLs as an endpoint middleware any service can use.

    authorizer = Authorizer("model.conf", "policy.csv")  # proglog's files, unchanged
    service = wrap_service(service, acl(authorizer))  # what --acl-model/--acl-policy do

The subject is the authenticated caller (`lokit.context.Caller`), the action
the method's declared action and the object what its `acl_object` reads from
the request (`*` by default). See `authorizer` and `middleware`.
"""

from lokit.auth.authorizer import WILDCARD, ACLError, Authorizer
from lokit.auth.middleware import acl, subject
from lokit.auth.watch import watching

__all__ = ["WILDCARD", "ACLError", "Authorizer", "acl", "subject", "watching"]
