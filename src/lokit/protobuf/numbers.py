"""`lokit.field(n)`: pin a protobuf field number in a type hint: `Annotated[int, lokit.field(3)]`.

Kept free of the protobuf runtime so that `import lokit` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FieldNumber", "field"]

MAX_NUMBER = 2**29 - 1
RESERVED = range(19000, 20000)  # protobuf's own implementation range


@dataclass(frozen=True)
class FieldNumber:
    """The protobuf field number a type hint pins (see `field`)."""

    number: int


def field(number: int) -> FieldNumber:
    """Pin a field's protobuf number: `name: Annotated[str, lokit.field(3)]`.

    Unpinned fields are numbered 1, 2, 3... in declaration order; pin a field
    to keep its number when fields before it are added or removed.
    """
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"a protobuf field number is an int, not {number!r}")
    if not 1 <= number <= MAX_NUMBER or number in RESERVED:
        raise ValueError(
            f"protobuf field number {number} is out of range "
            f"(1 to {MAX_NUMBER}, except {RESERVED.start}-{RESERVED.stop - 1})"
        )
    return FieldNumber(number)
