"""`manage.py backfill_feed`: download history for one stream into the tape, resumably."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from coordinator_site.boundary import escape_text
from feeds.choices import BackfillStatus
from feeds.dims import FeedDims
from feeds.providers import ProviderError, get_provider
from feeds.services import (
    BackfillBusy,
    LeaseLost,
    backfill_job_claim,
    backfill_job_fail,
    backfill_job_open,
    backfill_job_release,
    backfill_job_step,
    worker_identity,
)


def parse_when(raw: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"not an ISO 8601 time: {raw!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Back-fill [start, end) of one stream as a BackfillJob. Re-running the same range resumes the "
        "unfinished job from its cursor (a job whose worker died is taken over once its lease expires). "
        "A run in which records were rejected stores the good ones, then ends the job failed with the "
        "reasons, its cursor at the first page that had a rejection (exit status 1)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", required=True)
        parser.add_argument("--subject", required=True)
        parser.add_argument("--kind", required=True, choices=["tick", "candle"])
        parser.add_argument("--granularity", required=True)
        parser.add_argument("--start", required=True, help="ISO 8601 (UTC if no offset)")
        parser.add_argument("--end", required=True, help="ISO 8601 (UTC if no offset), exclusive")
        parser.add_argument("--page-size", type=int, default=None, help="Records per page (FEED_PAGE_SIZE).")
        parser.add_argument("--max-pages", type=int, default=None, help="Stop after this many pages (resumable).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs only).")

    def handle(self, *args, **options) -> None:
        dims = FeedDims(options["source"], options["subject"], options["kind"], options["granularity"])
        start, end = parse_when(options["start"]), parse_when(options["end"])
        try:
            job = backfill_job_open(dims=dims, start=start, end=end)
            provider = get_provider(dims.source)
            worker = worker_identity()
            job = backfill_job_claim(job=job, worker=worker)
        except (ValueError, BackfillBusy, ProviderError) as exc:
            raise CommandError(str(exc)) from exc
        if job.status == BackfillStatus.COMPLETED:
            self.stdout.write(f"backfill job {job.pk} already completed ({job.records_written} records)")
            return
        self.stdout.write(f"backfill job {job.pk} {dims} from {job.cursor.isoformat()} to {end.isoformat()}")
        pages = 0
        bar = tqdm(unit="rec", unit_scale=True, desc=f"job {job.pk}", disable=options["no_progress"], mininterval=0.5)
        try:
            while job.status == BackfillStatus.RUNNING:
                if options["max_pages"] is not None and pages >= options["max_pages"]:
                    backfill_job_release(job=job, worker=worker)
                    break
                written = backfill_job_step(job=job, provider=provider, worker=worker, page_size=options["page_size"])
                pages += 1
                bar.update(written)
                bar.set_postfix_str(f"cursor {job.cursor:%Y-%m-%d %H:%M:%S}", refresh=False)
        except LeaseLost as exc:
            raise CommandError(str(exc)) from exc
        except (Exception, KeyboardInterrupt) as exc:  # whatever stops the run: recorded on the job, no traceback
            try:
                backfill_job_fail(job=job, worker=worker, error=f"{type(exc).__name__}: {exc}")
            except Exception as db_exc:  # e.g. the database itself went away: say so, still no traceback
                self.stderr.write(escape_text(f"could not record the failure on job {job.pk}: {db_exc}"))
            raise CommandError(
                escape_text(f"backfill job {job.pk} stopped at {job.cursor.isoformat()}: {exc}")
            ) from exc
        finally:
            bar.close()
        if job.status == BackfillStatus.FAILED:
            # The good records are stored; the rejected ones are not, so the range is not complete.
            raise CommandError(
                f"backfill job {job.pk} failed ({job.records_written} records stored), re-run from "
                f"{job.cursor.isoformat()} once the source is fixed: {job.error}"
            )
        self.stdout.write(
            f"backfill job {job.pk} {job.status}: {job.records_written} records in {job.pages_fetched} pages, "
            f"cursor {job.cursor.isoformat()}"
        )
