"""Small admin helpers shared by every app's admin."""

import json

from django.contrib import admin
from django.utils.html import format_html


def pretty_json(field_name: str, description: str | None = None):
    """A read-only admin column showing a JSONField indented, in a <pre> block."""

    @admin.display(description=description or field_name.replace("_", " "))
    def show(self, obj):
        value = getattr(obj, field_name)
        return format_html(
            "<pre style='white-space:pre-wrap;margin:0'>{}</pre>",
            json.dumps(value, indent=2, sort_keys=True, default=str),
        )

    show.__name__ = f"{field_name}_pretty"
    return show


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows operators must never edit (the tape, scores): view only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
