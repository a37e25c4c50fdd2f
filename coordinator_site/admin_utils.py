"""Small admin helpers shared by every app's admin."""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
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


class ServiceButtonsAdmin(admin.ModelAdmin):
    """For rows whose state changes only through buttons that call the services (checkpoints,
    tournament rounds): never added or deleted in the admin, the change page has no save buttons;
    the buttons' views use the helpers."""

    NO_SAVE_BUTTONS = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def object_for_change(self, request, object_id):
        """The row, or 404; PermissionDenied without the change permission."""
        obj = get_object_or_404(self.model, pk=object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def change_url(self, obj) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])

    def changelist_url(self) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")

    # The buttons' views: (name, method name, per_object) -> `<pk>/<name>/` for a button on one
    # row, `<name>/` for one on the list; URL names `<app>_<model>_<name>`.
    buttons: tuple[tuple[str, str, bool], ...] = ()

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            *(
                path(
                    f"<path:object_id>/{name}/" if per_object else f"{name}/",
                    self.admin_site.admin_view(getattr(self, view)),
                    name=f"{prefix}_{name}",
                )
                for name, view, per_object in self.buttons
            ),
            *super().get_urls(),
        ]
