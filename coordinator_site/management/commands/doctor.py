"""`manage.py doctor [--spec spec.json]`: one line per check, non-zero exit on any failure."""

import tempfile

from django.core.management.base import BaseCommand, CommandError

from coordinator_site.scaffold.doctor import CheckResult, node_configured_by, run_checks
from coordinator_site.scaffold.generator import init_workspace
from coordinator_site.scaffold.spec import ScaffoldError


class Command(BaseCommand):
    help = (
        "Check the node configuration (contract, callable slots, prediction configs, feed, database, "
        "models directory), or with --spec the workspace a spec file would generate."
    )
    # Doctor reports broken configuration itself, line by line, instead of failing at start.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--spec", default=None, help="check this spec file (merged over its pack) instead")

    def handle(self, *args, spec, **options):
        if spec:
            results = self._check_spec(spec)
        else:
            results = run_checks()
        for result in results:
            self.stdout.write(result.line())
        failed = [result for result in results if not result.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} checks failed: {', '.join(r.name for r in failed)}")
        self.stdout.write(f"all {len(results)} checks passed")

    def _check_spec(self, spec: str) -> list[CheckResult]:
        with tempfile.TemporaryDirectory(prefix="doctor-spec-") as tmp:
            try:
                generated = init_workspace(slug="doctor-spec", output=tmp, spec_path=spec)
            except ScaffoldError as exc:
                return [CheckResult("spec", False, str(exc).replace("\n", " "))]
            results = [CheckResult("spec", True, f"{spec} (spec_version 1) merged over its pack, workspace generated")]
            with node_configured_by(generated.env):
                results.extend(run_checks())
            return results
