"""The shipped Prometheus files: rules and config parse, and every alert is unit-tested by
promtool (fires on a synthetic bad series, stays quiet on a healthy one). Skipped without
Debian's `prometheus` package (which ships promtool; .ci/run installs it)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


def alert_names(path: Path) -> set[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_every_alert_has_a_unit_test_and_a_runbook_entry():
    alerts = alert_names(RULES / "alerts.yml")
    assert {
        "CoordinatorFeedStale",
        "CoordinatorPredictSlotsMissed",
        "CoordinatorModelAnswerRateDropped",
        "CoordinatorScoreBacklogGrowing",
        "CoordinatorCheckpointOverdue",
        "CoordinatorCheckpointUnconfirmed",
        "CoordinatorCheckpointUnverified",
        "CoordinatorWorkerDown",
    } <= alerts
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "alerts.test.yml").read_text()))
    assert tested == alerts
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for anchor in re.findall(r"docs/operations\.md#([\w-]+)", (RULES / "alerts.yml").read_text()):
        assert f'<a id="{anchor}"></a>' in runbook, anchor


@needs_promtool
def test_promtool_checks_the_rules_and_the_config():
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_every_alert():
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
