import pytest

from reports.api import views


@pytest.fixture(autouse=True)
def _fresh_leaderboard_cache(settings):
    # Rolled-back test transactions reuse ids on SQLite; in production an id is never reused.
    views._leaderboard_cache.update(id=None, body=b"[]", checked_at=None)
    settings.REPORTS_LEADERBOARD_RECHECK_SECONDS = 0
