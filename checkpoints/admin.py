from django.contrib import admin

from checkpoints.models import Checkpoint, CheckpointLeaf, CheckpointTransition
from coordinator_site.admin_utils import ReadOnlyAdmin, pretty_json


class CheckpointTransitionInline(admin.TabularInline):
    model = CheckpointTransition
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "tx_hash", "actor", "at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ["id", "period_start", "period_end", "status", "merkle_root", "tx_hash", "submitted_at"]
    list_filter = ["status"]
    search_fields = ["tx_hash", "merkle_root"]
    inlines = [CheckpointTransitionInline]
    exclude = ["ranking", "emission", "meta"]
    readonly_fields = [
        "period_start",
        "period_end",
        "status",
        "merkle_root",
        "tx_hash",
        "submitted_at",
        "created_at",
        "updated_at",
        "ranking_pretty",
        "emission_pretty",
        "meta_pretty",
    ]
    ranking_pretty = pretty_json("ranking")
    emission_pretty = pretty_json("emission")
    meta_pretty = pretty_json("meta")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CheckpointLeaf)
class CheckpointLeafAdmin(ReadOnlyAdmin):
    list_display = ["checkpoint", "position", "snapshot", "leaf_hash"]
    list_select_related = ["checkpoint", "snapshot"]
    raw_id_fields = ["checkpoint", "snapshot"]
    search_fields = ["leaf_hash"]
    exclude = ["content"]
    readonly_fields = ["content_pretty"]
    content_pretty = pretty_json("content")


@admin.register(CheckpointTransition)
class CheckpointTransitionAdmin(ReadOnlyAdmin):
    list_display = ["checkpoint", "from_status", "to_status", "tx_hash", "actor", "at"]
    list_filter = ["to_status"]
    list_select_related = ["checkpoint"]
    raw_id_fields = ["checkpoint"]
    search_fields = ["tx_hash", "actor"]
