"""The last replay reports: what a replay / what-if / backtest found, read-only."""

import json

from django.contrib import admin
from django.utils.html import format_html

from replay.formatting import report_text
from replay.models import ReplayKind, ReplayReport


@admin.register(ReplayReport)
class ReplayReportAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "range_start", "range_end", "identical", "exit_code", "started_at", "actor")
    list_filter = ("kind", "identical")
    ordering = ("-started_at", "-id")
    readonly_fields = [f.name for f in ReplayReport._meta.fields] + ["report_as_text", "report_as_json"]
    exclude = ("report",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="report")
    def report_as_text(self, obj):
        if not obj.report:
            return "-"
        if obj.kind == ReplayKind.BACKTEST:
            return format_html("<pre>{}</pre>", json.dumps(obj.summary, indent=1))
        return format_html("<pre>{}</pre>", report_text(obj.report, what_if=obj.kind == ReplayKind.WHAT_IF))

    @admin.display(description="report (JSON)")
    def report_as_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.report, indent=1)[:200000])
