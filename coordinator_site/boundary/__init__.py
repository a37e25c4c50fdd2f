"""The sanitising boundary (DESIGN.md §12): every value from outside passes here before storage.

Written once, below every app, and used at each ingress: model outputs and their error texts,
model identities, feed rows, scoring results, ground truth, API parameters. Two kinds of value
cannot be stored or summed safely, whatever the competition:

- text PostgreSQL cannot hold: a NUL character, or a lone UTF-16 surrogate (``"\\ud800"``),
  which cannot be encoded as UTF-8 (SQLite stores it, Postgres refuses the whole statement);
- numbers that break a sum: NaN and ±Infinity, and finite numbers so large that a sum of them
  overflows to infinity or loses every digit (``1e308``). Each field has a documented bound.

Values are *rejected* per item with a reason code (`Rejected.code`): the item becomes terminal
with that reason and the rest of its batch goes on. Diagnostic texts (error details, exception
messages) are not rejected but *escaped* (`escape_text`), so the reason itself survives.
"""

from __future__ import annotations

import math
from typing import Any

# Reason codes (stored on the rejected item, documented in docs/failure-isolation.md).
UNSTORABLE_TEXT = "UNSTORABLE_TEXT"  # NUL or a lone surrogate
NON_FINITE_NUMBER = "NON_FINITE_NUMBER"  # NaN, Infinity
OUT_OF_RANGE = "OUT_OF_RANGE"  # a finite number beyond the field's bound (or below its minimum)
NOT_JSON = "NOT_JSON"  # a type strict JSON cannot hold, or a non-text object key
TOO_LARGE = "TOO_LARGE"  # text or document longer than the field allows
TOO_DEEP = "TOO_DEEP"  # nesting deeper than MAX_JSON_DEPTH

# Documented magnitude bounds. A sum of a billion values at the bound stays far below the
# float maximum (1.8e308), and their exact decimal sums stay small.
MAX_ABS_JSON_NUMBER = 1e15  # any number inside a stored JSON document (model outputs, ground truth)
MAX_ABS_SCORE = 1e12  # a score value (summed into snapshots and leaderboards)
MAX_JSON_DEPTH = 32
DETAIL_MAX_CHARS = 2000  # diagnostic texts are clipped to this


class Rejected(ValueError):
    """A value that must not be stored: `code` is the reason code, `detail` says where and why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored in PostgreSQL (None when it can)."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate at position {exc.start}"
    return None


def clean_text(value: Any, *, field: str, max_chars: int | None = None) -> str:
    """`value` if it is storable text (and not longer than `max_chars`), else Rejected."""
    if not isinstance(value, str):
        raise Rejected(NOT_JSON, f"{field} is {type(value).__name__}, not text")
    problem = text_problem(value)
    if problem:
        raise Rejected(UNSTORABLE_TEXT, f"{field} {problem}")
    if max_chars is not None and len(value) > max_chars:
        raise Rejected(TOO_LARGE, f"{field} is {len(value)} characters long (at most {max_chars})")
    return value


def escape_text(value: Any, *, max_chars: int = DETAIL_MAX_CHARS) -> str:
    """A diagnostic text made storable: NUL as the two characters ``\\0``, a lone surrogate as
    ``\\udXXX``; clipped to `max_chars`. Never raises (anything not text is repr()'d)."""
    text = value if isinstance(value, str) else repr(value)
    text = text[: max_chars * 2]  # escaping grows text: clip generously first, exactly last
    if "\x00" in text:
        text = text.replace("\x00", "\\0")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:max_chars]


def clean_number(
    value: Any, *, field: str, max_abs: float, minimum: float | None = None, exclusive_minimum: bool = False
) -> float:
    """`value` as a float if it is a finite number within ±`max_abs` (and above `minimum`), else Rejected."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(NOT_JSON, f"{field} is {type(value).__name__}, not a number")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise Rejected(OUT_OF_RANGE, f"{field} is beyond ±{max_abs:g}") from None
    if not math.isfinite(number):
        raise Rejected(NON_FINITE_NUMBER, f"{field} is {number!r}")
    if abs(number) > max_abs:
        raise Rejected(OUT_OF_RANGE, f"{field} is {number!r}, beyond ±{max_abs:g}")
    if minimum is not None and (number <= minimum if exclusive_minimum else number < minimum):
        raise Rejected(OUT_OF_RANGE, f"{field} is {number!r}, not {'>' if exclusive_minimum else '≥'} {minimum:g}")
    return number


def clean_json(value: Any, *, field: str, max_abs: float = MAX_ABS_JSON_NUMBER, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`value` unchanged if it is a strict-JSON document PostgreSQL can store and sum: text keys
    and strings without NUL/lone surrogates, finite numbers within ±`max_abs`, nesting at most
    `max_depth` deep; else Rejected naming the first offending path."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            clean_text(item, field=path)
        elif isinstance(item, int | float):
            clean_number(item, field=path, max_abs=max_abs)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise Rejected(TOO_DEEP, f"{path} is nested deeper than {max_depth}")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise Rejected(NOT_JSON, f"{path} has a {type(key).__name__} key")
                    clean_text(key, field=f"{path} key")
                    stack.append((child, f"{path}.{key[:40]}", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            raise Rejected(NOT_JSON, f"{path} is {type(item).__name__}, not JSON")
    return value
