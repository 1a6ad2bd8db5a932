"""The ASGI aliases under their old name; they live in `lokit.types`.

Only `lokit.transport.http`'s own `__init__` still imports them from here. Once it
imports `lokit.types`, this module can go.
"""

from lokit.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
