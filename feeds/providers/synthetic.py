"""A seeded geometric random walk: realistic prices with no network, the same for the same seed and time.

The log-price is a Brownian path W(t) over whole seconds, anchored at ANCHOR (price = start price).
It is built top-down so any second can be evaluated without walking from the anchor: one Gaussian
increment per day, split into 24 hourly, 60 minutely and 60 secondly increments with a Brownian bridge
(i.i.d. normals, re-centred to sum to the parent increment — exactly the conditional law). Every node
is drawn from its own RNG seeded by (seed, level, index), so the path does not depend on which times
were asked before. Price(t) = start x exp(sigma x W(t)); sigma = SYNTHETIC_VOLATILITY per one-minute step.
"""

import hashlib
import math
import random
from datetime import UTC, datetime
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

from coordinator_site.boundary import Rejected
from feeds.dims import FeedDims, NormalizedRecord, granularity_seconds
from feeds.providers.base import ProviderConfigError, clean_value, parse_page

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
_ANCHOR_S = int(ANCHOR.timestamp())
DAY, HOUR, MINUTE = 86400, 3600, 60


def _rng(seed: int, *path: int) -> random.Random:
    digest = hashlib.blake2b(repr((seed, *path)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _bridge(seed: int, total: float, n: int, step_var: float, *path: int) -> list[float]:
    """Prefix sums (length n+1) of n increments of variance step_var each, conditioned to sum to `total`."""
    rng = _rng(seed, *path)
    z = [rng.gauss(0.0, math.sqrt(step_var)) for _ in range(n)]
    shift = total / n - sum(z) / n
    prefix = [0.0]
    for value in z:
        prefix.append(prefix[-1] + value + shift)
    prefix[-1] = total  # exact, no float drift at the boundary
    return prefix


class SyntheticWalk:
    """W(t) in units of one-second standard deviations, with small caches for the bridge levels."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._day_start: dict[int, float] = {0: 0.0}
        self.hours = lru_cache(maxsize=64)(self._hours)
        self.minutes = lru_cache(maxsize=512)(self._minutes)
        self.seconds = lru_cache(maxsize=2048)(self._seconds)

    def _day_increment(self, day: int) -> float:
        return _rng(self.seed, 0, day).gauss(0.0, math.sqrt(DAY))

    def day_start(self, day: int) -> float:
        if day not in self._day_start:
            known = min(self._day_start, key=lambda d: abs(d - day))
            value = self._day_start[known]
            step = 1 if day > known else -1
            for d in range(known, day, step):
                value = value + self._day_increment(d) if step == 1 else value - self._day_increment(d - 1)
                self._day_start[d + step] = value
        return self._day_start[day]

    def _hours(self, day: int) -> list[float]:
        total = self.day_start(day + 1) - self.day_start(day)
        return _bridge(self.seed, total, 24, HOUR, 1, day)

    def _minutes(self, day: int, hour: int) -> list[float]:
        hours = self.hours(day)
        return _bridge(self.seed, hours[hour + 1] - hours[hour], 60, MINUTE, 2, day, hour)

    def _seconds(self, day: int, hour: int, minute: int) -> list[float]:
        minutes = self.minutes(day, hour)
        return _bridge(self.seed, minutes[minute + 1] - minutes[minute], 60, 1, 3, day, hour, minute)

    def at(self, epoch_second: int) -> float:
        day, rest = divmod(epoch_second - _ANCHOR_S, DAY)
        hour, rest = divmod(rest, HOUR)
        minute, second = divmod(rest, MINUTE)
        value = self.day_start(day) + self.hours(day)[hour]
        if minute or second:
            value += self.minutes(day, hour)[minute]
        if second:
            value += self.seconds(day, hour, minute)[second]
        return value


class SyntheticProvider:
    """Ticks and candles at any granularity from the seeded walk; deterministic for seed and time."""

    source = "synthetic"

    def __init__(self, *, seed: int | None = None, start_price: float | None = None, volatility: float | None = None):
        self.seed = settings.SYNTHETIC_SEED if seed is None else seed
        start_price = settings.SYNTHETIC_START_PRICE if start_price is None else start_price
        try:  # a start price no record could carry is a setting to fix, not a flood of rejected rows
            self.start_price = clean_value("price", start_price)
        except Rejected as exc:
            raise ProviderConfigError(f"SYNTHETIC_START_PRICE: {exc.detail}") from None
        self.sigma = (settings.SYNTHETIC_VOLATILITY if volatility is None else volatility) / math.sqrt(MINUTE)
        self._walks: dict[str, SyntheticWalk] = {}

    def _walk(self, subject: str) -> SyntheticWalk:
        # Each subject has its own path (seed mixed with the subject), all reproducible.
        if subject not in self._walks:
            mixed = int.from_bytes(hashlib.blake2b(f"{self.seed}:{subject}".encode(), digest_size=8).digest(), "big")
            self._walks[subject] = SyntheticWalk(mixed)
        return self._walks[subject]

    def price(self, subject: str, epoch_second: int) -> float:
        """The walk's price at a whole second."""
        return round(self.start_price * math.exp(self.sigma * self._walk(subject).at(epoch_second)), 2)

    def record_at(self, dims: FeedDims, epoch_second: int) -> NormalizedRecord:
        """The tick at, or the candle opening at, `epoch_second` (aligned to the granularity)."""
        ts = datetime.fromtimestamp(epoch_second, tz=UTC)
        if dims.kind == "tick":
            values = {"price": self.price(dims.subject, epoch_second)}
        else:
            length = granularity_seconds(dims.granularity)
            open_, close = self.price(dims.subject, epoch_second), self.price(dims.subject, epoch_second + length)
            # Intra-bar excursions: half-normal, scaled like the walk over the bar, seeded by the bar.
            rng = _rng(self.seed, 9, epoch_second, length)
            spread = self.start_price * self.sigma * math.sqrt(length) * 0.5
            high = round(max(open_, close) + abs(rng.gauss(0.0, spread)), 2)
            low = round(min(open_, close) - abs(rng.gauss(0.0, spread)), 2)
            volume = round(abs(rng.gauss(0.0, 1.0)) * length / 60 + 0.01, 4)
            values = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
        return NormalizedRecord(self.source, dims.subject, dims.kind, dims.granularity, ts, values, {"seed": self.seed})

    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        length = granularity_seconds(dims.granularity)
        now_s = int(timezone.now().timestamp())
        # Only what has happened: ticks up to now, candles that have closed by now.
        last = now_s if dims.kind == "tick" else now_s - length
        first = -(-math.ceil(start.timestamp()) // length) * length
        stop = min(math.ceil(end.timestamp()), last + 1)
        seconds = [s for s in range(first, stop, length)[:limit] if s < end.timestamp()]
        return self._page(dims, seconds)

    def _page(self, dims: FeedDims, seconds: list[int]) -> list[NormalizedRecord]:
        # Through the same per-record limits as every provider: a walk that wanders to a price that
        # rounds to 0.00 (or beyond MAX_PRICE) yields rejected records, never stored ones.
        return parse_page(seconds, lambda s: self.record_at(dims, s), source=self.source)

    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        length = granularity_seconds(dims.granularity)
        now_s = int(timezone.now().timestamp()) // length * length
        newest = now_s if dims.kind == "tick" else now_s - length
        return self._page(dims, [newest])

    def window(self, dims: FeedDims, start: datetime, count: int) -> list[NormalizedRecord]:
        """`count` consecutive records from `start` regardless of the clock (benchmarks, demos)."""
        length = granularity_seconds(dims.granularity)
        first = int(start.timestamp()) // length * length
        return self._page(dims, [first + i * length for i in range(count)])
