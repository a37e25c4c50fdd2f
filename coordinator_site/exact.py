"""Exact, order-independent sums of float scores (DESIGN.md §12, determinism).

A float is taken at the exact decimal of its shortest repr (Python `Decimal(repr(v))`,
PostgreSQL `v::text::numeric`: since PostgreSQL 12 float8 prints its shortest round-trip form),
so the same multiset of values gives the same sum in any order, on any backend, in any number
of workers. A mean is rounded once, at the end: the sum's exact ratio divided by n (Python's int / int is
correctly rounded).
SQLite's SUM is a plain float sum, so on SQLite the `exact_sum` aggregate below is registered
on every connection.
"""

from collections.abc import Iterable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

from django.db.models import Aggregate, TextField

ZERO = Decimal(0)
# Every sum and product goes through this context: the default one rounds to 28 digits, which
# would make a sum of a few hundred scores depend on the order of its terms.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def exact_sum(values: Iterable[Decimal], start: Decimal = ZERO) -> Decimal:
    """The exact sum of decimals (never rounded)."""
    total = start
    for value in values:
        total = EXACT.add(total, value)
    return total


def exact(value: float | int) -> Decimal:
    """The exact decimal of a float's shortest repr (ints exactly)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return Decimal(repr(float(value)))


def decimal_text(value: Decimal) -> str:
    """One canonical text per decimal value: fixed point, no trailing zeros ('0.3', '12', '-1.5')."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def parse_decimal(value: Any) -> Decimal:
    """A stored exact sum (decimal text, a Decimal, or None for 0) as a Decimal."""
    if value is None or value == "":
        return ZERO
    return value if isinstance(value, Decimal) else Decimal(str(value))


def exact_mean(total: Decimal | str | None, count: int) -> float | None:
    """sum / count as the nearest float (rounded once), None when count is 0."""
    if not count:
        return None
    # int / int is correctly rounded in Python, as float(Fraction(sum) / count) is, and cheaper.
    numerator, denominator = parse_decimal(total).as_integer_ratio()
    return numerator / (denominator * count)


class ExactSum(Aggregate):
    """SUM of a float column as an exact decimal (Decimal on PostgreSQL, decimal text on SQLite).

    Read the result through `parse_decimal`.
    """

    function = "SUM"
    name = "ExactSum"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        # value::text::numeric: the shortest repr's exact decimal (not ::numeric, which drops digits).
        clone = self.copy()
        clone.template = "%(function)s((%(expressions)s)::text::numeric)"
        return super(ExactSum, clone).as_sql(compiler, connection, **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        clone = self.copy()
        clone.function = "exact_sum"
        return super(ExactSum, clone).as_sql(compiler, connection, **extra_context)

    def convert_value(self, value, expression, connection):
        return None if value is None else parse_decimal(value)

    def get_db_converters(self, connection):
        return [self.convert_value]


class _SqliteExactSum:
    """The `exact_sum(x)` aggregate for SQLite connections."""

    def __init__(self) -> None:
        self.total = ZERO
        self.seen = False

    def step(self, value) -> None:
        if value is not None:
            self.total = EXACT.add(self.total, exact(value))
            self.seen = True

    def finalize(self) -> str | None:
        return decimal_text(self.total) if self.seen else None


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """connection_created receiver: the exact aggregate on every SQLite connection."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("exact_sum", 1, _SqliteExactSum)
