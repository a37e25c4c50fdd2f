"""`manage.py init_workspace <slug> [--pack P] [--spec FILE] [--output DIR] [--force]`."""

from django.core.management.base import BaseCommand, CommandError

from coordinator_site.scaffold.generator import init_workspace
from coordinator_site.scaffold.spec import ScaffoldError, available_packs


class Command(BaseCommand):
    help = "Generate a competition workspace: the public challenge package and the operator's node config."
    # Generating a workspace must not depend on the current node configuration being valid.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("slug", help="lowercase letters, digits and hyphens, e.g. btc-direction")
        parser.add_argument("--pack", default=None, help=f"one of: {', '.join(available_packs())} (default baseline)")
        parser.add_argument("--spec", default=None, help='spec file ({"spec_version": "1", ...}) merged over the pack')
        parser.add_argument("--output", default=None, help="workspace directory (default ./workspaces/<slug>)")
        parser.add_argument("--force", action="store_true", help="replace existing generated folders")

    def handle(self, *args, slug, pack, spec, output, force, **options):
        try:
            result = init_workspace(slug=slug, output=output, pack=pack, spec_path=spec, force=force)
        except ScaffoldError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"workspace {result.workspace}: {len(result.files)} files")
        self.stdout.write(f"  challenge package  {result.challenge_dir}")
        self.stdout.write(f"  node config        {result.node_dir}")
        env_file = result.node_dir / ".env"
        self.stdout.write("next (from this directory, the coordinator-node checkout):")
        self.stdout.write(f"  (cd {result.challenge_dir} && python -m pytest -q)   # the challenge's own tests")
        self.stdout.write(f"  export ENV_FILE={env_file} PYTHONPATH={result.env['PYTHONPATH']}")
        self.stdout.write("  python manage.py doctor && python manage.py migrate && python manage.py run_node")
        self.stdout.write(f"  (details: {result.node_dir / 'RUNBOOK.md'})")
