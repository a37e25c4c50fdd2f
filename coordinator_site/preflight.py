"""Start-up checks shared by `run_node` (which refuses to start) and `doctor` (which reports them)."""

from django.conf import settings

PYTH_KEY_MISSING = """\
FEED_SOURCE=pyth, but PYTH_API_KEY is empty: Pyth's Hermes API requires an API key.
Ways out:
  - set PYTH_API_KEY=<your key> in .env (or in the environment), or
  - use Binance's public klines, which need no key: in .env set
      FEED_SOURCE=binance
      FEED_KIND=candle
      FEED_GRANULARITY=1m
  - or run `make demo` (a synthetic feed with short cycles; no network, no key)."""


def feed_preflight_error() -> str | None:
    """Why the configured feed cannot work at all (checked before anything starts), or None."""
    if settings.FEED_SOURCE == "pyth" and not settings.PYTH_API_KEY:
        return PYTH_KEY_MISSING
    return None


def system_check_errors(*, skip: tuple[str, ...] = ()) -> list[str]:
    """The Django system checks every command and the web server run at start (errors only), as
    `id: message (hint)` lines: what would stop `migrate` or `run_node`. `skip`: check ids the
    caller reports itself."""
    from django.core import checks

    messages = checks.run_checks(include_deployment_checks=False)
    return [
        f"{m.id}: {m.msg}" + (f" ({m.hint})" if m.hint else "")
        for m in messages
        if m.level >= checks.ERROR and not m.is_silenced() and m.id not in skip
    ]
