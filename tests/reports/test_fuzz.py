"""Schemathesis against a live server with data: the API answers as its OpenAPI document says.

Every check schemathesis has (`--checks all`: no server error, status codes, content types,
headers and bodies as documented, invalid data refused, valid data accepted, auth enforced
where declared, unsupported methods 405, …) over every operation: with an admin API key in the
examples, coverage, fuzzing and stateful phases, anonymously without the coverage phase, and
with REPORTS_REQUIRE_AUTH in the fuzzing phase; a few examples per operation (~30 s in all on
PostgreSQL, ~15 s on SQLite). What OpenAPI cannot say (valid cursors, ordered time ranges) is told to the
generator in tests/reports/schemathesis_hooks.py, not excused here. No check is excluded.
"""

import hashlib

import pytest
import schemathesis
from django.core.servers.basehttp import WSGIRequestHandler
from django.db import connections
from schemathesis.engine import Status
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished

import tests.reports.schemathesis_hooks  # noqa: F401  (registers the cursor format and the range filter)
from checkpoints.merkle import merkle_root
from checkpoints.models import Checkpoint, CheckpointLeaf
from reports.services import api_key_create
from tests.reports.helpers import build_world

MAX_EXAMPLES = 3
ALL_PHASES = ["examples", "coverage", "fuzzing", "stateful"]


def run_schemathesis(base_url: str, *, headers: dict[str, str], phases: list[str]) -> tuple[list[str], int]:
    """(one line per failed check or engine error, number of checks run) of one schemathesis run."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema/")
    schema.config.update(base_url=base_url, headers=headers)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    schema.config.checks.update(included_check_names=["all"])
    schema.config.phases.update(phases=phases)
    problems, checks_run = [], 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, FatalError | NonFatalError):
            problems.append(f"engine error: {event}")
        elif isinstance(event, ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    checks_run += 1
                    if check.status == Status.FAILURE:
                        failure = check.failure_info.failure
                        case = event.recorder.cases.get(case_id)
                        if case and documented_red_node(case.value, check, failure):
                            continue
                        sent = (
                            f"{case.value.method} {case.value.formatted_path} {case.value.query} {case.value.body!r}"
                            if case
                            else ""
                        )
                        problems.append(
                            f"{event.recorder.label}: {check.name}: {failure.title}: {failure.message} [{sent}]"
                        )
    return sorted(set(problems)), checks_run


def documented_red_node(case, check, failure) -> bool:
    """The one 5xx that is not a server error: /reports/health answers a red node (here: no
    worker runs) with its documented 503, for uptime monitors. Every other check still applies."""
    return (
        case.method == "GET"
        and case.formatted_path == "/reports/health"
        and check.name == "not_a_server_error"
        and "503" in f"{failure.title} {failure.message} {getattr(failure, 'status_code', '')}"
    )


@pytest.fixture
def live_world(transactional_db, live_server, monkeypatch):
    """build_world() plus Merkle leaves, so /reports/merkle/proof has proofs to serve."""
    # The test server writes headers and body separately; on a kept-alive connection Nagle's
    # algorithm then waits for the client's delayed ACK: 40 ms per request instead of 2.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    world = build_world()
    commit_snapshots(world["new_cp"], world["snapshots"])
    # The live server answers each request in a new thread; with persistent connections each
    # of them would keep one open past the test (and block the test database's teardown).
    db_settings = connections.settings["default"]
    max_age, db_settings["CONN_MAX_AGE"] = db_settings["CONN_MAX_AGE"], 0
    yield live_server.url.replace("localhost", "127.0.0.1")  # no IPv6-first lookup per request
    db_settings["CONN_MAX_AGE"] = max_age


def commit_snapshots(checkpoint, snapshots):
    leaves = [hashlib.sha256(f"snapshot-{s.pk}".encode()).hexdigest() for s in snapshots]
    for position, (snapshot, leaf_hash) in enumerate(zip(snapshots, leaves, strict=True)):
        CheckpointLeaf.objects.create(
            checkpoint=checkpoint,
            snapshot=snapshot,
            position=position,
            content={"id": snapshot.pk},
            leaf_hash=leaf_hash,
        )
    Checkpoint.objects.filter(pk=checkpoint.pk).update(merkle_root=merkle_root(leaves))


def test_the_api_answers_as_documented_with_an_admin_key(live_world):
    _, raw = api_key_create(name="fuzz", scope="admin")
    problems, checks_run = run_schemathesis(live_world, headers={"X-API-Key": raw}, phases=ALL_PHASES)
    assert checks_run > 1000  # every operation was really exercised
    assert problems == []


def test_the_api_answers_as_documented_to_anonymous_clients(live_world):
    # The coverage phase's boundary and negative values do not depend on credentials (and the
    # admin run above also probes every declared operation without them); anonymous reads and
    # refused writes are exercised by the other phases.
    problems, checks_run = run_schemathesis(live_world, headers={}, phases=["examples", "fuzzing", "stateful"])
    assert checks_run > 200
    assert problems == []


def test_with_reports_require_auth_reads_refuse_anonymous_clients(live_world, settings):
    # The document then declares no public alternative, and schemathesis' ignored_auth check
    # probes every read without the key (and with a wrong one): each must be a 401.
    settings.REPORTS_REQUIRE_AUTH = True
    _, raw = api_key_create(name="fuzz", scope="read")
    problems, checks_run = run_schemathesis(live_world, headers={"X-API-Key": raw}, phases=["fuzzing"])
    assert checks_run > 200
    assert problems == []
