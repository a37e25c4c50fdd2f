from django.contrib import admin

from coordinator_site.admin_utils import ReadOnlyAdmin, pretty_json
from coordinator_site.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "pid", "started_at", "last_beat_at", "stopped_at", "last_error_at"]
    list_filter = ["name"]
    search_fields = ["name", "host"]
    readonly_fields = ["counters_pretty", "last_error"]
    exclude = ["counters"]
    counters_pretty = pretty_json("counters")
