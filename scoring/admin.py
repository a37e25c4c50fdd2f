from django.contrib import admin

from coordinator_site.admin_utils import ReadOnlyAdmin, pretty_json
from scoring.models import Leaderboard, Score, Snapshot


@admin.register(Score)
class ScoreAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "scope_key", "value", "success", "performed_at", "scored_at"]
    list_filter = ["success", "scope_key"]
    list_select_related = ["model"]
    raw_id_fields = ["prediction", "model", "input"]
    search_fields = ["=prediction__id", "model__model_id"]
    date_hierarchy = "performed_at"
    show_full_result_count = False
    exclude = ["result"]
    readonly_fields = ["result_pretty"]
    result_pretty = pretty_json("result")


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "period_start", "period_end", "prediction_count", "content_hash"]
    list_select_related = ["model"]
    raw_id_fields = ["model"]
    search_fields = ["model__model_id", "content_hash"]
    date_hierarchy = "period_start"
    exclude = ["result_summary", "counts"]
    readonly_fields = ["result_summary_pretty", "counts_pretty"]
    result_summary_pretty = pretty_json("result_summary")
    counts_pretty = pretty_json("counts")


@admin.register(Leaderboard)
class LeaderboardAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at"]
    date_hierarchy = "created_at"
    exclude = ["entries", "meta"]
    readonly_fields = ["entries_pretty", "meta_pretty"]
    entries_pretty = pretty_json("entries")
    meta_pretty = pretty_json("meta")
