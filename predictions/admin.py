from django.contrib import admin

from coordinator_site.admin_utils import ReadOnlyAdmin, pretty_json
from predictions.models import Input, ModelDeployment, ParticipantModel, Prediction, PredictionConfig
from predictions.services import set_benchmark


class ModelDeploymentInline(admin.TabularInline):
    model = ModelDeployment
    extra = 0
    can_delete = False
    readonly_fields = ["deployment_id", "first_seen_at", "last_seen_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ParticipantModel)
class ParticipantModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "name",
        "cruncher_name",
        "cruncher_index",
        "is_benchmark",
        "status",
        "deployment_id",
        "last_seen_at",
    ]
    list_filter = ["status", "is_benchmark"]
    list_editable = ["cruncher_index", "is_benchmark"]
    actions = ["flag_benchmark", "unflag_benchmark"]
    search_fields = ["model_id", "name", "cruncher_id", "cruncher_name"]
    inlines = [ModelDeploymentInline]
    readonly_fields = [
        "model_id",
        "deployment_id",
        "first_seen_at",
        "last_seen_at",
        "created_at",
        "updated_at",
        "overall_score_pretty",
        "scores_by_scope_pretty",
        "meta_pretty",
    ]
    exclude = ["overall_score", "scores_by_scope", "meta"]
    overall_score_pretty = pretty_json("overall_score")
    scores_by_scope_pretty = pretty_json("scores_by_scope")
    meta_pretty = pretty_json("meta")

    @admin.action(description="Flag the selected models as benchmark (never paid; the payout cutoff)")
    def flag_benchmark(self, request, queryset):
        changed = set_benchmark(model_ids=list(queryset.values_list("model_id", flat=True)), is_benchmark=True)
        self.message_user(request, f"{changed} model(s) flagged as benchmark.")

    @admin.action(description="Remove the benchmark flag from the selected models")
    def unflag_benchmark(self, request, queryset):
        changed = set_benchmark(model_ids=list(queryset.values_list("model_id", flat=True)), is_benchmark=False)
        self.message_user(request, f"{changed} model(s) no longer benchmark.")


@admin.register(PredictionConfig)
class PredictionConfigAdmin(admin.ModelAdmin):
    list_display = ["scope_key", "interval_seconds", "horizon_seconds", "active", "order", "next_run_at"]
    list_filter = ["active"]
    search_fields = ["scope_key"]
    readonly_fields = ["scope_key", "next_run_at", "claimed_by", "lease_until", "created_at", "updated_at"]


@admin.register(Input)
class InputAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "config",
        "scheduled_for",
        "as_of",
        "resolvable_at",
        "status",
        "expiry_reason",
        "attempts",
        "short_error",
    ]
    list_filter = ["status", "expiry_reason", "config"]
    list_select_related = ["config"]
    raw_id_fields = ["config"]
    search_fields = ["=id"]
    date_hierarchy = "scheduled_for"
    show_full_result_count = False
    exclude = ["raw_data", "scope", "ticks", "actuals"]
    readonly_fields = ["raw_data_pretty", "scope_pretty", "ticks_pretty", "actuals_pretty"]
    raw_data_pretty = pretty_json("raw_data")
    scope_pretty = pretty_json("scope")
    ticks_pretty = pretty_json("ticks")
    actuals_pretty = pretty_json("actuals")

    @admin.display(description="last error")
    def short_error(self, obj: Input) -> str:
        return (obj.last_error or "")[:120]


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "model",
        "scope_key",
        "status",
        "failure_reason",
        "exec_time_us",
        "performed_at",
        "resolvable_at",
    ]
    list_filter = ["status", "failure_reason", "scope_key"]
    list_select_related = ["model"]
    raw_id_fields = ["input", "model", "config"]
    search_fields = ["=id", "model__model_id", "model__name"]
    date_hierarchy = "performed_at"
    show_full_result_count = False
    exclude = ["output"]
    readonly_fields = ["output_pretty"]
    output_pretty = pretty_json("output")
