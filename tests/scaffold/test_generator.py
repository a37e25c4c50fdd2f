import hashlib
import json

import pytest
import yaml
from django.core.management import CommandError, call_command

from coordinator_site.contract import SLOT_PARAMETERS
from coordinator_site.scaffold.generator import parse_env

from .helpers import generate, run_challenge_tests, write_spec


@pytest.mark.parametrize(("pack", "interval", "horizon"), [("baseline", 60, 300), ("realtime", 15, 60)])
def test_each_pack_generates_a_workspace_whose_challenge_tests_pass(tmp_path, pack, interval, horizon):
    result = generate(tmp_path, pack=pack)

    challenge, node = result.challenge_dir, result.node_dir
    for relative in (
        "pyproject.toml",
        "README.md",
        "SKILL.md",
        "crunch_btc_demo/model.py",
        "crunch_btc_demo/schemas.py",
        "crunch_btc_demo/validation.py",
        "crunch_btc_demo/scoring.py",
        "examples/momentum/main.py",
        "examples/mean_reversion/main.py",
        "examples/coin_flip/main.py",
        "tests/test_validation.py",
    ):
        assert (challenge / relative).is_file(), relative
    for relative in (
        ".env",
        "scheduled_prediction_configs.json",
        "crunch_node_btc_demo/contract.py",
        "docker-compose.override.yml",
        "README.md",
        "RUNBOOK.md",
        "SKILL.md",
    ):
        assert (node / relative).is_file(), relative
    assert (result.workspace / "SKILL.md").is_file()

    configs = json.loads((node / "scheduled_prediction_configs.json").read_text())
    assert [(c["interval_seconds"], c["horizon_seconds"]) for c in configs] == [(interval, horizon)]

    outcome = run_challenge_tests(challenge)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert " passed" in outcome.stdout


def test_env_wires_every_slot_and_points_the_node_at_both_folders(tmp_path):
    result = generate(tmp_path)
    env = parse_env((result.node_dir / ".env").read_text())

    assert set(SLOT_PARAMETERS) <= set(env)
    assert all(env[slot] for slot in SLOT_PARAMETERS), {s: env[s] for s in SLOT_PARAMETERS if not env[s]}
    assert env["SCORING_FUNCTION"] == "crunch_btc_demo.scoring:brier_score"
    assert env["INFERENCE_OUTPUT_VALIDATOR"] == "crunch_btc_demo.validation:validate_output"
    assert env["CRUNCH_CONTRACT"] == "crunch_node_btc_demo.contract:CONTRACT"
    assert env["MODEL_BASE_CLASSNAME"] == "crunch_btc_demo.model.ModelBaseClass"
    assert env["MODELS_DIR"] == str(result.challenge_dir / "examples")
    assert env["PYTHONPATH"].split(":") == [str(result.challenge_dir), str(result.node_dir)]


def test_process_log_has_one_line_per_generated_file_with_its_hash(tmp_path):
    result = generate(tmp_path)
    lines = [json.loads(line) for line in (result.workspace / "process-log.jsonl").read_text().splitlines()]

    assert sorted(line["path"] for line in lines) == sorted(result.files)
    for line in lines:
        content = (result.workspace / line["path"]).read_bytes()
        assert line["sha256"] == hashlib.sha256(content).hexdigest()
        assert line["slug"] == "btc-demo"
        assert line["pack"] == "baseline"
        assert line["replaced"] is False


def test_a_spec_merges_over_the_pack(tmp_path):
    result = generate(
        tmp_path,
        pack="realtime",
        name="Demo Crunch",
        feed={"source": "synthetic", "kind": "candle", "granularity": "1m"},
        callables={"SCORING_FUNCTION": "challenge:scoring:log_loss_score"},
    )
    env = result.env

    assert (env["FEED_SOURCE"], env["FEED_KIND"], env["FEED_GRANULARITY"]) == ("synthetic", "candle", "1m")
    assert env["FEED_POLL_SECONDS"] == "1"  # untouched keys come from the pack
    assert env["SCORING_FUNCTION"] == "crunch_btc_demo.scoring:log_loss_score"
    assert env["CRUNCH_NAME"] == "Demo Crunch"
    assert "log_loss_score" in (result.challenge_dir / "README.md").read_text()


def test_compose_override_runs_every_worker_with_the_workspace_mounted(tmp_path):
    result = generate(tmp_path)
    compose = yaml.safe_load((result.node_dir / "docker-compose.override.yml").read_text())

    for service in ("migrate", "web", "feed", "predict", "score", "checkpoint"):
        environment = compose["services"][service]["environment"]
        assert environment["PYTHONPATH"] == "/workspace/crunch-btc-demo:/workspace/crunch-node-btc-demo"
        assert environment["MODELS_DIR"] == "/workspace/crunch-btc-demo/examples"
    assert compose["services"]["predict"]["command"] == "python manage.py run_predict"


def test_force_replaces_the_folders_and_logs_it(tmp_path):
    result = generate(tmp_path)
    (result.challenge_dir / "stray.txt").write_text("old")
    call_command("init_workspace", "btc-demo", "--output", str(result.workspace), "--force", stdout=None)

    assert not (result.challenge_dir / "stray.txt").exists()
    last = json.loads((result.workspace / "process-log.jsonl").read_text().splitlines()[-1])
    assert last["replaced"] is True


# --- refusals: a clear error, and nothing written --------------------------------------------


def assert_refused(tmp_path, options, message, *, slug="btc-demo"):
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=message):
        call_command("init_workspace", "--output", str(out), *options, "--", slug)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("slug", ["Bad", "1abc", "a", "a--b", "a_b", "-ab", "ab-", "btc demo", "x" * 41, "../up"])
def test_a_bad_slug_is_refused(tmp_path, slug):
    assert_refused(tmp_path, [], "invalid slug", slug=slug)


def test_an_unknown_pack_is_refused(tmp_path):
    assert_refused(
        tmp_path, ["--pack", "trading"], "unknown pack 'trading'; available packs: baseline, realtime, tournament"
    )


def test_a_malformed_spec_is_refused(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text('{"spec_version": "1", "feed": {')
    assert_refused(tmp_path, ["--spec", str(spec)], "malformed JSON at line 1")


def test_a_missing_spec_file_is_refused(tmp_path):
    assert_refused(tmp_path, ["--spec", str(tmp_path / "nope.json")], "cannot be read")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"spec_version": "1", "colour": "blue"}, r"unknown keys \['colour'\]"),
        ({"spec_version": "1", "feed": {"sauce": "pyth"}}, r"feed.sauce: unknown key"),
        ({"spec_version": "1", "callables": {"MAGIC": "a:b"}}, "unknown callable slots"),
        (
            {"spec_version": "1", "callables": {"SCORING_FUNCTION": "challenge:scoring:nope"}},
            "defines no 'scoring:nope'",
        ),
        (
            {
                "spec_version": "1",
                "schedule": [
                    {
                        "scope_key": "a",
                        "subject": "BTC",
                        "interval_seconds": 0,
                        "horizon_seconds": 60,
                        "step_seconds": 60,
                    }
                ],
            },
            "interval_seconds",
        ),
        ({"spec_version": "2"}, "unsupported spec_version '2'"),
        ({"name": "x"}, "missing 'spec_version'"),
        (["spec_version", "1"], "expected a JSON object"),
    ],
)
def test_an_invalid_spec_is_refused(tmp_path, body, message):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(body))
    assert_refused(tmp_path, ["--spec", str(spec)], message)


def test_a_pack_contradicting_the_spec_is_refused(tmp_path):
    spec = write_spec(tmp_path / "spec.json", pack="realtime")
    assert_refused(tmp_path, ["--pack", "baseline", "--spec", str(spec)], "contradicts")


def test_an_existing_folder_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "out"
    (out / "crunch-node-btc-demo").mkdir(parents=True)
    (out / "crunch-node-btc-demo" / "mine.txt").write_text("keep")

    with pytest.raises(CommandError, match=r"refusing to overwrite .*crunch-node-btc-demo.*--force"):
        call_command("init_workspace", "btc-demo", "--output", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["crunch-node-btc-demo"]
    assert [p.name for p in (out / "crunch-node-btc-demo").iterdir()] == ["mine.txt"]
