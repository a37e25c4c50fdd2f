"""A bad callable path fails `manage.py check`, naming the variable and the path."""

import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from coordinator_site.contract import ContractError, get_callable, get_contract

OVERRIDES = {
    "missing module": ("nowhere.at_all:func", "cannot import module 'nowhere.at_all'"),
    "missing attribute": ("tests.foundation.callable_targets:nope", "has no attribute 'nope'"),
    "not callable": ("tests.foundation.callable_targets:NOT_CALLABLE", "is not callable"),
    "wrong parameters": ("tests.foundation.callable_targets:scoring_with_one_parameter", "(prediction, ground_truth)"),
}


def with_override(slot, path):
    from django.conf import settings

    return override_settings(CALLABLE_OVERRIDES={**settings.CALLABLE_OVERRIDES, slot: path})


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_manage_check_fails_naming_the_variable_and_the_path(case):
    path, problem = OVERRIDES[case]
    with with_override("SCORING_FUNCTION", path), pytest.raises(SystemCheckError) as caught:
        call_command("check")
    message = str(caught.value)
    assert "SCORING_FUNCTION" in message
    assert repr(path) in message
    assert problem in message


def test_a_good_override_passes_and_is_what_the_slot_returns():
    with with_override("SCORING_FUNCTION", "tests.foundation.callable_targets:scoring_ok"):
        call_command("check")
        from tests.foundation.callable_targets import scoring_ok

        assert get_callable("SCORING_FUNCTION") is scoring_ok


def test_a_bad_contract_path_fails_check():
    with override_settings(CRUNCH_CONTRACT="tests.foundation.callable_targets:NOT_CALLABLE"):
        with pytest.raises(SystemCheckError) as caught:
            call_command("check")
        assert "CRUNCH_CONTRACT" in str(caught.value)
        with pytest.raises(ContractError):
            get_contract()


def test_the_env_var_is_read_by_a_real_manage_py_check(manage_py):
    import os

    env = {**os.environ, "SCORING_FUNCTION": "nowhere.at_all:func"}
    result = subprocess.run([*manage_py, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SCORING_FUNCTION='nowhere.at_all:func'" in result.stderr


@pytest.mark.parametrize(
    ("snapshot", "interval", "ok"),
    [(3600, 604800, True), (60, 300, True), (7, 300, False), (3600, 5400, False), (604800, 604800, False)],
)
def test_snapshot_period_must_nest_in_checkpoint_periods(settings, snapshot, interval, ok):
    from coordinator_site.checks import check_snapshot_period_nests_in_checkpoints

    settings.SNAPSHOT_PERIOD_SECONDS = snapshot
    settings.CHECKPOINT_INTERVAL_SECONDS = interval
    errors = check_snapshot_period_nests_in_checkpoints()
    assert (not errors) is ok
    if not ok:
        assert errors[0].id == "coordinator.E020"
