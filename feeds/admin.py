from django.contrib import admin

from coordinator_site.admin_utils import ReadOnlyAdmin, pretty_json
from feeds.models import BackfillJob, FeedIngestionState, FeedRecord, TapeRecovery

DIM_FILTERS = ["source", "subject", "kind", "granularity"]


@admin.register(FeedRecord)
class FeedRecordAdmin(ReadOnlyAdmin):
    list_display = ["ts_event", "source", "subject", "kind", "granularity", "ts_ingested"]
    list_filter = DIM_FILTERS
    search_fields = ["subject"]
    date_hierarchy = "ts_event"
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is too slow
    exclude = ["values", "meta"]
    readonly_fields = ["values_pretty", "meta_pretty"]
    values_pretty = pretty_json("values")
    meta_pretty = pretty_json("meta")


@admin.register(FeedIngestionState)
class FeedIngestionStateAdmin(ReadOnlyAdmin):
    list_display = [
        "source",
        "subject",
        "kind",
        "granularity",
        "last_event_ts",
        "last_polled_at",
        "consecutive_errors",
        "last_error_at",
    ]
    list_filter = DIM_FILTERS
    search_fields = ["subject", "last_error"]


@admin.register(TapeRecovery)
class TapeRecoveryAdmin(ReadOnlyAdmin):
    list_display = [
        "source",
        "subject",
        "kind",
        "granularity",
        "last_fetch_at",
        "window_start",
        "window_end",
        "records_written",
        "fetches",
        "next_fetch_at",
    ]
    list_filter = DIM_FILTERS
    search_fields = ["subject", "last_error"]


@admin.register(BackfillJob)
class BackfillJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "source",
        "subject",
        "kind",
        "granularity",
        "start",
        "end",
        "cursor",
        "records_written",
        "status",
        "updated_at",
    ]
    list_filter = ["status", *DIM_FILTERS]
    search_fields = ["subject", "error"]
    readonly_fields = [
        "cursor",
        "records_written",
        "pages_fetched",
        "status",
        "error",
        "claimed_by",
        "lease_until",
        "created_at",
        "updated_at",
    ]
