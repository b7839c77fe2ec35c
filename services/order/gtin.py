"""GS1 Global Trade Item Numbers: GTIN-13 (EAN-13) and GTIN-14 with the mod-10 check digit.

The check digit is computed from the right: digits in odd positions (counting the
digit next to the check digit as position 1) weigh 3, the others 1; the check digit
brings the weighted sum up to the next multiple of ten.
"""

from __future__ import annotations

LENGTHS = (13, 14)


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for `body` (a GTIN without its last digit)."""
    if not body.isascii() or not body.isdigit():
        raise ValueError("a GTIN contains digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def validate_gtin(value: str) -> str:
    """`value` when it is a well-formed GTIN-13 or GTIN-14; ValueError saying why not."""
    if not value.isascii() or not value.isdigit():
        raise ValueError("a GTIN contains digits only")
    if len(value) not in LENGTHS:
        raise ValueError(f"a GTIN has 13 or 14 digits, this one has {len(value)}")
    expected = check_digit(value[:-1])
    if int(value[-1]) != expected:
        raise ValueError(
            f"GTIN {value} has a wrong check digit: expected {expected}, got {value[-1]}"
        )
    return value


def to_gtin14(value: str) -> str:
    """The 14-digit form GS1 recommends for storage (GTIN-13 gets a leading zero)."""
    return validate_gtin(value).rjust(14, "0")
