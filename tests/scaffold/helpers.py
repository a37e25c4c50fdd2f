import json
import os
import subprocess
import sys
from pathlib import Path

from coordinator_site.contract import STARTER_CONTRACT
from coordinator_site.scaffold.generator import init_workspace
from coordinator_site.scaffold.spec import load_pack


def stub_callables_for_missing_defaults() -> dict[str, str]:
    """Spec `callables` for every slot the node has no default for yet (empty once all have landed)."""
    pack_callables = load_pack("baseline").body.callables
    return {
        slot: f"tests.scaffold.stub_callables:{slot.lower()}"
        for slot, path in STARTER_CONTRACT.callables.items()
        if path is None and pack_callables[slot] == "default"
    }


def write_spec(path: Path, **body) -> Path:
    path.write_text(json.dumps({"spec_version": "1", **body}))
    return path


def generate(tmp_path: Path, *, slug: str = "btc-demo", pack: str = "baseline", **spec_body):
    """A workspace under tmp_path/ws whose node-side slots all resolve (stubs where no default exists)."""
    callables = {**stub_callables_for_missing_defaults(), **spec_body.pop("callables", {})}
    spec = write_spec(tmp_path / f"spec-{slug}.json", callables=callables, **spec_body)
    return init_workspace(slug=slug, output=tmp_path / "ws", pack=pack, spec_path=spec)


def run_challenge_tests(challenge_dir: Path) -> subprocess.CompletedProcess:
    """The generated package's own test suite, in a clean interpreter outside Django."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:django", "-p", "no:cacheprovider"],
        cwd=challenge_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
