from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from checkpoints.choices import CheckpointStatus
from checkpoints.formats import frac64_to_pct
from checkpoints.models import Checkpoint, CheckpointLeaf, CheckpointTransition
from checkpoints.services import (
    InvalidTxHash,
    checkpoint_advance,
    checkpoint_confirm,
    checkpoint_void,
    force_checkpoint,
)
from checkpoints.verification import record_verification
from coordinator_site.admin_utils import ReadOnlyAdmin, ServiceButtonsAdmin, pretty_json
from coordinator_site.transitions import InvalidTransition

# Operator moves: refusals of the services are shown to the operator, never swallowed.
REFUSALS = (InvalidTransition, InvalidTxHash, ValueError)


def next_advance(checkpoint: Checkpoint) -> str | None:
    """The status "Advance status" moves to (SUBMITTED is reached by confirming a tx hash)."""
    targets = Checkpoint.STATUS_TRANSITIONS.get(checkpoint.status, set()) - {
        CheckpointStatus.SUBMITTED,
        CheckpointStatus.VOID,
    }
    return next(iter(sorted(targets)), None)


class ConfirmTxHashForm(forms.Form):
    tx_hash = forms.CharField(
        label="Transaction hash",
        max_length=512,  # the service enforces the real bound and says why
        widget=forms.TextInput(attrs={"size": 90, "autofocus": True}),
        help_text="The signature of the on-chain checkpoint submission (base58 or hex).",
    )
    override_reason = forms.CharField(
        label="Override reason (only for a checkpoint that pays nobody)",
        required=False,
        max_length=1000,
        widget=forms.TextInput(attrs={"size": 90}),
        help_text="A checkpoint whose cruncher list is empty is confirmed only with a reason (recorded).",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason (recorded with your name)", max_length=1000, widget=forms.Textarea)


class CheckpointTransitionInline(admin.TabularInline):
    model = CheckpointTransition
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "tx_hash", "actor", "at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(ServiceButtonsAdmin):
    list_display = ["id", "period_start", "period_end", "status", "merkle_root", "tx_hash", "submitted_at"]
    list_filter = ["status"]
    search_fields = ["tx_hash", "merkle_root"]
    inlines = [CheckpointTransitionInline]
    actions = ["advance_selected", "verify_selected"]
    fields = [
        "period",
        "status",
        "merkle_root",
        "tx_hash",
        "submitted_at",
        "ranking_table",
        "emission_percent",
        "emission_pretty",
        "meta_pretty",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    emission_pretty = pretty_json("emission", "emission (as submitted, frac64)")
    meta_pretty = pretty_json("meta")

    # --- display -------------------------------------------------------------------------

    @admin.display(description="period [start, end)")
    def period(self, obj: Checkpoint):
        return format_html("[{}, {})", obj.period_start.isoformat(), obj.period_end.isoformat())

    @admin.display(description="ranking")
    def ranking_table(self, obj: Checkpoint):
        if not obj.ranking:
            return (obj.meta or {}).get("empty_reason") or "empty ranking"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    item.get("rank") if item.get("rank") is not None else "-",
                    item.get("model_name") or "",
                    item.get("model_id"),
                    item.get("cruncher_name") or item.get("cruncher_id") or "",
                    item.get("cruncher_index") if item.get("cruncher_index") is not None else "UNSET",
                    item.get("value"),
                    item.get("prediction_count"),
                    f"{frac64_to_pct(item['reward_pct']):.7f} %" if item.get("reward_pct") is not None else "-",
                    ", ".join(item.get("flags") or []),
                )
                for item in obj.ranking
            ),
        )
        return format_html(
            "<table><thead><tr><th>rank</th><th>model</th><th>cruncher</th><th>cruncher index</th>"
            "<th>value</th><th>predictions</th><th>reward</th><th>flags</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="emission (percent)")
    def emission_percent(self, obj: Checkpoint):
        emission = obj.emission or {}
        lines = [("crunch", emission.get("crunch") or "(unset)", "")]
        lines += [
            ("cruncher index", r["cruncher_index"], f"{frac64_to_pct(r['reward_pct']):.7f} %")
            for r in emission.get("cruncher_rewards", [])
        ]
        for key, label in (
            ("compute_provider_rewards", "compute provider"),
            ("data_provider_rewards", "data provider"),
        ):
            lines += [(label, r["provider"], f"{frac64_to_pct(r['reward_pct']):.7f} %") for r in emission.get(key, [])]
        lines.append(("merkle root", emission.get("merkle_root") or "(none)", ""))
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", lines),
        )

    # --- operator actions ------------------------------------------------------------------

    buttons = (
        ("confirm", "confirm_view", True),
        ("advance", "advance_view", True),
        ("void", "void_view", True),
        ("force", "force_view", False),
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        checkpoint = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_confirm": checkpoint is not None and checkpoint.status == CheckpointStatus.PENDING,
            "advance_to": next_advance(checkpoint) if checkpoint is not None else None,
            # every field is read-only: state changes go through the buttons (the services)
            **self.NO_SAVE_BUTTONS,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def confirm_view(self, request, object_id):
        """ "Confirm tx hash": a form asking for the hash, then `checkpoint_confirm`."""
        checkpoint = self.object_for_change(request, object_id)
        form = ConfirmTxHashForm(request.POST or None)
        error = None
        if request.method == "POST" and form.is_valid():
            try:
                checkpoint_confirm(
                    checkpoint=checkpoint,
                    tx_hash=form.cleaned_data["tx_hash"],
                    actor=request.user.get_username(),
                    override_reason=form.cleaned_data["override_reason"],
                )
            except REFUSALS as exc:
                error = str(exc)  # shown once, on the re-rendered form (not also as a message)
            else:
                messages.success(
                    request, f"Checkpoint {checkpoint.pk} confirmed with tx {form.cleaned_data['tx_hash']}"
                )
                return HttpResponseRedirect(self.change_url(checkpoint))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": checkpoint,
            "title": f"Confirm the tx hash of checkpoint {checkpoint.pk}",
            "form": form,
            "error": error,
            "change_url": self.change_url(checkpoint),
        }
        return TemplateResponse(request, "admin/checkpoints/checkpoint/confirm_tx_hash.html", context)

    def advance_view(self, request, object_id):
        """ "Advance status": POST `to`, then `checkpoint_advance`; the refusal is shown as an error."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        checkpoint = self.object_for_change(request, object_id)
        to = request.POST.get("to", "")
        try:
            moved = checkpoint_advance(checkpoint=checkpoint, to=to, actor=request.user.get_username())
        except REFUSALS as exc:
            messages.error(request, f"Refused: {exc}")
        else:
            messages.success(request, f"Checkpoint {checkpoint.pk} is {moved.status}")
        return HttpResponseRedirect(self.change_url(checkpoint))

    def _reason_page(self, request, *, title: str, form, error, action: str, back: str, original=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": original,
            "title": title,
            "form": form,
            "error": error,
            "action": action,
            "change_url": back,
        }
        return TemplateResponse(request, "admin/checkpoints/checkpoint/reason_form.html", context)

    def void_view(self, request, object_id):
        """ "Void": PENDING -> VOID with a reason; run_checkpoint then builds the period again."""
        checkpoint = self.object_for_change(request, object_id)
        form = ReasonForm(request.POST or None)
        error = None
        if request.method == "POST" and form.is_valid():
            try:
                checkpoint_void(
                    checkpoint=checkpoint, reason=form.cleaned_data["reason"], actor=request.user.get_username()
                )
            except REFUSALS as exc:
                error = str(exc)
            else:
                messages.success(request, f"Checkpoint {checkpoint.pk} voided; its period will be built again")
                return HttpResponseRedirect(self.change_url(checkpoint))
        return self._reason_page(
            request,
            title=f"Void checkpoint {checkpoint.pk}",
            form=form,
            error=error,
            action="Void (PENDING → VOID; the period is built again once settled)",
            back=self.change_url(checkpoint),
            original=checkpoint,
        )

    def force_view(self, request):
        """ "Force next period": build the next ended period although it is not settled."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = ReasonForm(request.POST or None)
        error = None
        if request.method == "POST" and form.is_valid():
            try:
                checkpoint = force_checkpoint(reason=form.cleaned_data["reason"], actor=request.user.get_username())
            except REFUSALS as exc:
                error = str(exc)
            else:
                messages.warning(request, f"Checkpoint {checkpoint.pk} built by force")
                return HttpResponseRedirect(self.change_url(checkpoint))
        return self._reason_page(
            request,
            title="Force the next checkpoint period",
            form=form,
            error=error,
            action="Build it now (recorded as forced)",
            back=self.changelist_url(),
        )

    @admin.action(description="Verify the selected checkpoints against the stored rows")
    def verify_selected(self, request, queryset):
        for checkpoint in queryset.order_by("period_start"):
            verification = record_verification(checkpoint).meta["verification"]
            if verification["ok"]:
                messages.success(request, f"Checkpoint {checkpoint.pk}: verified")
            else:
                problems = "; ".join(verification["problems"][:5])
                messages.error(
                    request, f"Checkpoint {checkpoint.pk}: {verification['problem_count']} difference(s): {problems}"
                )

    @admin.action(description="Advance status of the selected checkpoints by one step")
    def advance_selected(self, request, queryset):
        for checkpoint in queryset.order_by("period_start"):
            target = next_advance(checkpoint)
            if target is None:
                messages.error(
                    request, f"Refused: checkpoint {checkpoint.pk} is {checkpoint.status} and cannot advance"
                )
                continue
            try:
                checkpoint_advance(checkpoint=checkpoint, to=target, actor=request.user.get_username())
            except REFUSALS as exc:
                messages.error(request, f"Refused: checkpoint {checkpoint.pk}: {exc}")
            else:
                messages.success(request, f"Checkpoint {checkpoint.pk} is {target}")


# "Checkpoint leafs" otherwise. Set here rather than in the model's Meta, which would need a
# migration for a label only.
CheckpointLeaf._meta.verbose_name_plural = "checkpoint leaves"


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
