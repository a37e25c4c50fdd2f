"""Formatting for the HTML pages: UTC times with ISO tooltips, numbers, percents, durations."""

import json
import math
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from coordinator_site.contract import competition_name as contract_competition_name
from reports.pages.formatting import human_duration
from reports.pages.selectors import health_overview

register = template.Library()
FRAC64_TOTAL = 1_000_000_000  # 100 % in the emission's frac64 units


@register.filter
def utc(value: datetime | None) -> str:
    """`<time>` showing the moment in UTC to the second, with the full ISO timestamp as tooltip."""
    if not value:
        return mark_safe('<span class="muted">—</span>')
    value = value.astimezone(UTC)
    iso = value.isoformat()
    return format_html('<time datetime="{}" title="{}">{}</time>', iso, iso, value.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


@register.filter
def num(value, digits: int = 4) -> str:
    """A number with thousands separators: integers as such, floats to `digits` decimals; '—' if missing."""
    value = _number(value)
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{int(digits)}f}"


@register.filter
def percent(value, digits: int = 1) -> str:
    """A ratio (0..1) as a percent: 0.875 -> '87.5 %'."""
    value = _number(value)
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f} %"


@register.filter
def frac64_percent(value) -> str:
    """A frac64 amount (1,000,000,000 = 100 %) as a percent with enough digits to be exact-ish."""
    value = _number(value)
    if value is None:
        return "—"
    return f"{value * 100 / FRAC64_TOTAL:.4f} %"


@register.filter
def duration(value: timedelta | None) -> str:
    """A timedelta as '3 d 4 h', '5 m 2 s', '800 ms'; '—' when missing."""
    return "—" if value is None else human_duration(value)


@register.filter
def since(value: datetime | None) -> str:
    """How long ago `value` was, as a duration."""
    if value is None:
        return "—"
    return duration(timezone.now() - value)


@register.simple_tag
def refresh_seconds() -> str:
    """How often live pages swap in fresh data (static/pages/live.js); "0" disables it."""
    return format(max(0.0, float(settings.PAGES_REFRESH_SECONDS)), "g")


@register.simple_tag
def competition_name() -> str:
    return contract_competition_name()


@register.inclusion_tag("pages/_health_badge.html")
def health_badge():
    """The node's health at a glance (green/amber/red) for the navigation bar (the cached verdict)."""
    return {"health": health_overview()}


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with `changes` applied (None/'' removes a key), for page links."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value not in (None, ""):
            params[key] = value
    return "?" + urlencode(list(params.items())) if params else "?"


@register.filter
def get(mapping, key):
    """`mapping[key]` for a key held in a variable; None when missing or not a mapping."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def compact_json(value, limit: int = 120) -> str:
    """A JSON value on one line, cut at `limit` characters."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= int(limit) else text[: int(limit) - 1] + "…"
