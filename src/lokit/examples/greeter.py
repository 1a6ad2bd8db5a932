"""The README's first service: a greeter with a unary method, a server stream and a business error.

python -m lokit.examples.greeter --grpc unix:run/greeter.grpc.sock --http unix:run/greeter.http.sock
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import lokit
from lokit.errors import InvalidArgument


class NameRequired(InvalidArgument):  # a business error: INVALID_ARGUMENT, HTTP 400
    default_message = "name is required"


class Greeter:
    async def greet(self, name: str, excited: bool = False) -> str:
        """Say hello to `name`."""
        if not name:
            raise NameRequired()
        return f"hello, {name}" + ("!" if excited else "")

    async def countdown(self, n: int) -> AsyncIterator[int]:  # a server stream
        """Count down from `n` to 1."""
        for i in range(n, 0, -1):
            yield i


if __name__ == "__main__":
    lokit.main(lokit.define("greeter", Greeter()))
