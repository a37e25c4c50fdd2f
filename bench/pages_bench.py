"""Time every HTML page against a Postgres database holding N predictions (default 1,000,000).

Usage (Postgres only; the rows are generated in SQL with generate_series):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/coord_pages SECRET_KEY=x \
        python manage.py migrate && python bench/pages_bench.py --predictions 1000000

Fills the database once (it reuses the rows if there are already enough predictions), then
requests each page a few times through Django's test client and prints the median time and
the query count. Prints figures; asserts nothing.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coordinator_site.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

MODELS = 20

FILL_SQL = """
INSERT INTO predictions_model (model_id, name, cruncher_id, cruncher_name, cruncher_index, deployment_id, status,
    overall_score, scores_by_scope, meta, first_seen_at, last_seen_at, created_at, updated_at, is_benchmark)
SELECT 'bench-' || m, 'bench model ' || m, 'c' || m, 'cruncher ' || m, m, 'd' || m, 'ACTIVE', '{}', '{}', '{}',
    now(), now(), now(), now(), false
FROM generate_series(1, %(models)s) AS m ON CONFLICT DO NOTHING;

INSERT INTO predictions_predictionconfig (scope_key, scope_template, interval_seconds, horizon_seconds, active, "order",
    claimed_by, meta, created_at, updated_at)
VALUES ('bench-5m', '{}', 60, 300, true, 0, '', '{}', now(), now()) ON CONFLICT DO NOTHING;

INSERT INTO predictions_input (config_id, scheduled_for, raw_data, scope, as_of, received_at, resolvable_at, status,
    claimed_by, attempts, last_error, expiry_reason, ticks, sample_id)
SELECT c.id, now() - make_interval(mins => i), '{}', '{}', now() - make_interval(mins => i),
    now() - make_interval(mins => i), now() - make_interval(mins => i) + interval '5 minutes',
    CASE WHEN i < 5 THEN 'RECEIVED' ELSE 'RESOLVED' END, '', 0, '', '', '{}', ''
FROM predictions_predictionconfig c, generate_series(1, %(inputs)s) AS i
WHERE c.scope_key = 'bench-5m' ON CONFLICT DO NOTHING;

INSERT INTO predictions_prediction (input_id, model_id, config_id, scope_key, deployment_id, status, failure_reason,
    failure_detail, output, exec_time_us, performed_at, resolvable_at)
SELECT i.id, m.id, i.config_id, 'bench-5m', m.deployment_id,
    CASE WHEN i.status = 'RECEIVED' THEN 'PENDING' WHEN (i.id + m.id) %% 17 = 0 THEN 'FAILED' ELSE 'SCORED' END,
    CASE WHEN i.status <> 'RECEIVED' AND (i.id + m.id) %% 17 = 0 THEN 'TIMEOUT' ELSE '' END,
    '', '{"p_up": 0.5}', 1000, i.scheduled_for, i.resolvable_at
FROM predictions_input i JOIN predictions_predictionconfig c ON c.id = i.config_id AND c.scope_key = 'bench-5m'
CROSS JOIN predictions_model m WHERE m.model_id LIKE 'bench-%%'
ON CONFLICT DO NOTHING;
ANALYZE;
"""

PAGES = [
    "/",
    "/models/bench-7",
    "/predictions",
    "/predictions?model=bench-7",
    "/predictions?status=FAILED",
    "/predictions?model=bench-3&status=FAILED",
    "/feeds",
    "/checkpoints",
    "/health",
]


def fill(predictions: int) -> None:
    from predictions.models import Prediction

    have = Prediction.objects.count()
    if have >= predictions:
        print(f"reusing {have:,} predictions")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, {"models": MODELS, "inputs": predictions // MODELS})
    print(f"filled {Prediction.objects.count():,} predictions in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("this benchmark needs Postgres: set DATABASE_URL")
    fill(args.predictions)
    client = Client(HTTP_HOST="localhost")
    # The older-page link of the first predictions page, to time a deep keyset page too.
    first = client.get("/predictions").content.decode()
    marker = 'rel="next" href="'
    if marker in first:
        PAGES.append(first.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&"))
    print(f"{'page':<48} {'median ms':>10} {'queries':>8} {'status':>7}")
    for url in PAGES:
        timings = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
        print(f"{url[:48]:<48} {statistics.median(timings):>10.1f} {len(queries):>8} {response.status_code:>7}")


if __name__ == "__main__":
    main()
