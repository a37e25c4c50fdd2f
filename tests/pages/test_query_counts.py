"""Query counts are pinned and do not grow with the data (no N+1 on any page).

The health badge in the layout reads the node's cached health verdict (computed at most every
HEALTH_CACHE_SECONDS by monitoring.health), so it costs no query here: the cache is warmed first.
The verdict's own computation is pinned in tests/monitoring.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_feed_record, make_ingestion_state, make_input, make_model, make_prediction
from tests.pages.helpers import seed_node

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def warm_health(settings):
    """The badge reads a verdict computed before the request (as on a running node)."""
    from monitoring.health import current_health

    settings.HEALTH_CACHE_SECONDS = 3600
    current_health()


PAGES = [
    # url, queries (the badge is cached)
    ("/", 2),  # leaderboard row, snapshot trends of every ranked model
    ("/models/m-alpha", 6),  # model, newest snapshot, window snapshots, deployments, predictions, snapshots
    ("/predictions", 3),  # model choices, config choices, one page of rows (LIMIT size+1)
    ("/predictions?model=m-alpha&status=SCORED", 3),
    # ingestion states; per stream (the seeded synthetic one + the configured pyth one): count+oldest, recent tape
    ("/feeds", 8),
    ("/checkpoints", 5),  # one page of rows, newest checkpoint end, readiness (schedules, inputs, 2 heartbeats)
    ("/health", 4),  # live processes, 2 queue counts, newest checkpoint end
]


def grow(now):
    """More of everything the pages list: the query counts must not move."""
    config_input = make_input(scheduled_for=now - timedelta(minutes=3))
    for _ in range(15):
        make_prediction(model=make_model(), input=config_input)
    for minutes in range(200, 260):
        make_feed_record(ts_event=now - timedelta(minutes=minutes))


@pytest.mark.parametrize(("url", "queries"), PAGES)
def test_page_query_count_is_pinned_and_flat(client, django_assert_num_queries, url, queries):
    now = timezone.now()
    seeded = seed_node(now=now)
    with django_assert_num_queries(queries):
        assert client.get(url).status_code == 200
    grow(now)
    with django_assert_num_queries(queries):
        assert client.get(url).status_code == 200
    del seeded


def test_checkpoint_detail_query_count_is_pinned(client, django_assert_num_queries):
    seeded = seed_node(now=timezone.now())
    with django_assert_num_queries(4):  # checkpoint, transitions, leaf count, late scores
        assert client.get(f"/checkpoints/{seeded.checkpoint.id}").status_code == 200


def test_feeds_page_costs_three_index_probes_per_stream_and_no_count(client, django_assert_num_queries):
    seed_node(now=timezone.now())
    make_ingestion_state(subject="ETH")
    with django_assert_num_queries(11):
        assert client.get("/feeds").status_code == 200
