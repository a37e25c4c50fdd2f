"""Plain-text formatting shared by the page selectors and template filters."""

from datetime import timedelta


def human_duration(value: timedelta) -> str:
    """A timedelta as '3 d 4 h', '5 m 2 s', '800 ms' (two units at most); negative keeps its sign."""
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{int(seconds // size)} {unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)
