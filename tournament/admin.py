"""Rounds in the admin: read-only rows; every state change is a button that calls a service.

Open a round (round file upload), upload ground truth (CSV/JSON file), re-score (reason) and
cancel (reason), the same services `manage.py tournament` and the API call; a refusal is shown
to the operator, never swallowed.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from coordinator_site.admin_utils import ServiceButtonsAdmin, pretty_json
from coordinator_site.transitions import InvalidTransition
from tournament.choices import ROUND_TRANSITIONS, RoundStatus
from tournament.models import Round
from tournament.selectors import round_progress
from tournament.services import (
    RoundError,
    cancel_round,
    default_weight,
    open_round,
    parse_samples,
    parse_truth_file,
    request_rescore,
    upload_ground_truth,
)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
REFUSALS = (InvalidTransition, RoundError)


class OpenRoundForm(forms.Form):
    round_id = forms.CharField(
        max_length=64, help_text="Letters, digits, '.', '_' or '-' (default: the file's).", required=False
    )
    out_of_sample_weight = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        help_text="Weight of the out-of-sample part (default: the file's or the setting).",
    )
    round_file = forms.FileField(
        help_text="JSON: {round_id?, out_of_sample_weight?, samples: [{sample_id, features, part?}]}."
    )


class TruthForm(forms.Form):
    truth_file = forms.FileField(help_text="CSV with a sample_id column, or JSON keyed by sample_id.")


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason (recorded with your name)", max_length=2000, widget=forms.Textarea)


def _read(upload) -> str:
    if upload.size > MAX_UPLOAD_BYTES:
        raise RoundError(f"file larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RoundError(f"file is not UTF-8 text: {exc}") from exc


@admin.register(Round)
class RoundAdmin(ServiceButtonsAdmin):
    list_display = ["round_id", "status", "sample_count", "out_of_sample_weight", "opened_at", "scored_at"]
    list_filter = ["status"]
    search_fields = ["round_id"]
    fields = [
        "round_id",
        "status",
        "sample_count",
        "out_of_sample_weight",
        "progress",
        "results_table",
        "truth_report_pretty",
        "rescores_pretty",
        "cancel_reason",
        "last_error",
        "opened_at",
        "inference_done_at",
        "truth_uploaded_at",
        "scored_at",
        "claimed_by",
        "lease_until",
        "meta_pretty",
    ]
    readonly_fields = fields
    truth_report_pretty = pretty_json("truth_report", "ground-truth upload report")
    rescores_pretty = pretty_json("rescores", "re-scores")
    meta_pretty = pretty_json("meta")

    @admin.display(description="progress")
    def progress(self, obj: Round):
        return format_html("<pre style='margin:0'>{}</pre>", json.dumps(round_progress(obj), indent=2, sort_keys=True))

    @admin.display(description="results (per part and combined)")
    def results_table(self, obj: Round):
        models = (obj.results or {}).get("models") or {}
        if not models:
            return "not scored yet"

        def fmt(value):
            return "-" if value is None else f"{value:.6g}"

        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    entry.get("rank") if entry.get("rank") is not None else "-",
                    model_id,
                    fmt((entry.get("in_sample") or {}).get("mean")),
                    fmt((entry.get("out_of_sample") or {}).get("mean")),
                    fmt(entry.get("combined")),
                    (entry.get("in_sample") or {}).get("n", 0) + (entry.get("out_of_sample") or {}).get("n", 0),
                )
                for model_id, entry in sorted(
                    models.items(), key=lambda m: (m[1].get("rank") is None, m[1].get("rank") or 0)
                )
            ),
        )
        weight = obj.results.get("out_of_sample_weight")
        return format_html(
            "<table><thead><tr><th>rank</th><th>model</th><th>in-sample</th><th>out-of-sample</th>"
            "<th>combined ({} * in + {} * out)</th><th>values</th></tr></thead><tbody>{}</tbody></table>",
            fmt(1 - weight) if weight is not None else "?",
            fmt(weight),
            rows,
        )

    # --- operator actions ------------------------------------------------------------------

    buttons = (
        ("open", "open_view", False),
        ("upload", "upload_view", True),
        ("rescore", "rescore_view", True),
        ("cancel", "cancel_view", True),
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        round_ = self.get_object(request, object_id)
        status = round_.status if round_ is not None else None
        extra_context = {
            **(extra_context or {}),
            "can_upload": status in (RoundStatus.INFERENCE_DONE, RoundStatus.GROUND_TRUTH_UPLOADED),
            "can_rescore": status == RoundStatus.SCORED,
            "can_cancel": status is not None and RoundStatus.CANCELLED in ROUND_TRANSITIONS.get(status, set()),
            **self.NO_SAVE_BUTTONS,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request, *, title, form, error, problems, action, back, original=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": original,
            "title": title,
            "form": form,
            "error": error,
            "problems": problems[:50],
            "action": action,
            "change_url": back,
        }
        return TemplateResponse(request, "admin/tournament/round/form.html", context)

    def open_view(self, request):
        """ "Open a round": a round file, then `open_round`; run_predict asks the models."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = OpenRoundForm(request.POST or None, request.FILES or None)
        error, problems = None, []
        if request.method == "POST" and form.is_valid():
            try:
                try:
                    data = json.loads(_read(form.cleaned_data["round_file"]))
                except ValueError as exc:
                    raise RoundError(f"round file is not valid JSON: {exc}") from exc
                file_fields = data if isinstance(data, dict) else {}
                weight = form.cleaned_data["out_of_sample_weight"]
                round_, _created = open_round(
                    round_id=form.cleaned_data["round_id"] or file_fields.get("round_id", ""),
                    samples=parse_samples(data),
                    out_of_sample_weight=weight if weight is not None else file_fields.get("out_of_sample_weight"),
                    actor=request.user.get_username(),
                )
            except REFUSALS as exc:
                error, problems = str(exc), getattr(exc, "problems", [])
            else:
                messages.success(request, f"Round {round_.round_id} opened with {round_.sample_count} sample(s)")
                return HttpResponseRedirect(self.change_url(round_))
        return self._page(
            request,
            title=f"Open a tournament round (default out-of-sample weight {default_weight()})",
            form=form,
            error=error,
            problems=problems,
            action="Open the round",
            back=self.changelist_url(),
        )

    def upload_view(self, request, object_id):
        """ "Upload ground truth": CSV/JSON keyed by sample_id, then `upload_ground_truth`."""
        round_ = self.object_for_change(request, object_id)
        form = TruthForm(request.POST or None, request.FILES or None)
        error, problems = None, []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["truth_file"]
            try:
                truth = parse_truth_file(_read(upload), name=upload.name)
                round_ = upload_ground_truth(round_=round_, truth=truth, actor=request.user.get_username())
            except REFUSALS as exc:
                error, problems = str(exc), getattr(exc, "problems", [])
            else:
                report = round_.truth_report
                messages.success(
                    request,
                    f"Ground truth for {report['accepted']}/{report['samples']} sample(s); missing "
                    f"{len(report['missing'])}, extra {len(report['extra'])}, invalid {len(report['invalid'])}",
                )
                return HttpResponseRedirect(self.change_url(round_))
        return self._page(
            request,
            title=f"Upload the ground truth of round {round_.round_id}",
            form=form,
            error=error,
            problems=problems,
            action="Upload (replaces earlier truth before scoring)",
            back=self.change_url(round_),
            original=round_,
        )

    def _reason_action(self, request, object_id, *, service, verb, title):
        round_ = self.object_for_change(request, object_id)
        form = ReasonForm(request.POST or None)
        error = None
        if request.method == "POST" and form.is_valid():
            try:
                round_ = service(round_=round_, reason=form.cleaned_data["reason"], actor=request.user.get_username())
            except REFUSALS as exc:
                error = str(exc)
            else:
                messages.success(request, f"Round {round_.round_id} is {round_.status}")
                return HttpResponseRedirect(self.change_url(round_))
        return self._page(
            request,
            title=title.format(round_.round_id),
            form=form,
            error=error,
            problems=[],
            action=verb,
            back=self.change_url(round_),
            original=round_,
        )

    def rescore_view(self, request, object_id):
        """ "Re-score": SCORED -> GROUND_TRUTH_UPLOADED with a reason; run_score replaces the scores."""
        return self._reason_action(
            request,
            object_id,
            service=request_rescore,
            verb="Re-score (its scores are replaced)",
            title="Re-score round {}",
        )

    def cancel_view(self, request, object_id):
        """ "Cancel round": -> CANCELLED with a reason; its samples end without scores."""
        return self._reason_action(
            request, object_id, service=cancel_round, verb="Cancel the round", title="Cancel round {}"
        )
