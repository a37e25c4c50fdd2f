"""Feed providers and the registry that picks one by source name (DESIGN.md §6).

`get_provider(source)` returns an object with `fetch(dims, start, end, limit)` and `latest(dims)`
returning `NormalizedRecord`s; see `feeds.providers.base.FeedProvider`.
"""

from importlib import import_module

from django.conf import settings

from feeds.providers.base import (
    FeedProvider,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    StreamingProvider,
)

PROVIDERS = {
    "pyth": "feeds.providers.pyth:PythProvider",
    "binance": "feeds.providers.binance:BinanceProvider",
    "synthetic": "feeds.providers.synthetic:SyntheticProvider",
    "csv": "feeds.providers.csv_file:CsvProvider",
}

__all__ = [
    "PROVIDERS",
    "FeedProvider",
    "ProviderConfigError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "StreamingProvider",
    "get_provider",
    "history_available",
    "streaming_kinds",
]


# The kinds each source can stream over a push connection (stream mode); the others are polled.
# Kept here, not on the classes, so that asking does not import a provider's client library.
STREAM_KINDS = {"pyth": frozenset({"tick"}), "binance": frozenset({"tick", "candle"})}


def streaming_kinds(source: str) -> frozenset[str]:
    """The kinds `source` streams in FEED_MODE=stream (empty: polled only)."""
    return STREAM_KINDS.get(source, frozenset())


def history_available(source: str) -> bool:
    """True when `source`'s `fetch` can be asked without a missing setting (pyth pages history from
    PYTH_HISTORY_URL, csv from FEED_CSV_PATH; binance and synthetic need none). Asks nothing."""
    if source == "pyth":
        return bool(settings.PYTH_HISTORY_URL)
    if source == "csv":
        return bool(settings.FEED_CSV_PATH)
    return source in PROVIDERS


def get_provider(source: str) -> FeedProvider:
    """A fresh provider for `source` (pyth, binance, synthetic, csv); ProviderConfigError for an unknown one."""
    try:
        module_name, attr = PROVIDERS[source].split(":")
    except KeyError:
        raise ProviderConfigError(f"unknown FEED_SOURCE {source!r}; known: {', '.join(PROVIDERS)}") from None
    # Imported lazily so e.g. python-binance is only loaded when that source is used.
    return getattr(import_module(module_name), attr)()
