"""django-filter filtersets: one per listed model.

Every value is parsed by the API parameter parsers of the sanitising boundary
(`coordinator_site.boundary.params`); a bad one is a 400 `{"detail", "code"}` naming the
parameter (`StrictFilterBackend`).
"""

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import CSVWidget
from drf_spectacular.utils import extend_schema_field

from checkpoints.choices import CheckpointStatus
from checkpoints.models import Checkpoint
from coordinator_site.boundary import Rejected
from coordinator_site.boundary.params import (
    MALFORMED,
    MAX_DB_ID,
    parse_choice,
    parse_id_list,
    parse_utc_datetime,
    parse_whole_number,
)
from feeds.models import FeedRecord
from predictions.choices import FailureReason, PredictionStatus
from predictions.models import ParticipantModel, Prediction
from reports.api.openapi import DATETIME_PARAM, ID_LIST_PARAM, ID_PARAM
from scoring.models import Snapshot

BOUNDARY_CODES = {"UNSTORABLE_TEXT", "NON_FINITE_NUMBER", "OUT_OF_RANGE", "NOT_JSON", "TOO_LARGE", "TOO_DEEP"}


def _refusal(name: str, error: forms.ValidationError) -> Rejected:
    """The API's one 400 for the first error of form field `name`."""
    message = error.message % error.params if error.params else error.message
    code = error.code if error.code in BOUNDARY_CODES else MALFORMED
    return Rejected(code, message if message.startswith(name) else f"{name}: {message}")


# One unbound FilterSet per class and process, with its form's fields. A FilterSet built per
# request deep-copies every filter and builds a form (about a millisecond, more than the SQL of
# a page of predictions); cleaning the same fields in the same order and applying the same
# filters gives the same rows and the same refusal (tests compare both ways).
_templates: dict[type, tuple[django_filters.FilterSet, list[tuple[str, forms.Field]]]] = {}


def _template(filterset_class):
    template = _templates.get(filterset_class)
    if template is None:
        filterset = filterset_class(queryset=filterset_class._meta.model._default_manager.none())
        template = _templates[filterset_class] = (filterset, list(filterset.form.fields.items()))
    return template


def clean_filter_params(filterset_class, data) -> dict:
    """The cleaned value of each of `filterset_class`'s filters (None: not given) from the query
    parameters `data`, or Rejected naming the first bad parameter in the FilterSet's order (the
    refusal `filterset_class(data).is_valid()` leads to)."""
    filterset, fields = _template(filterset_class)
    cleaned = {}
    for name, field in fields:
        try:
            cleaned[name] = field.clean(field.widget.value_from_datadict(data, None, name))
        except forms.ValidationError as exc:
            raise _refusal(name, exc.error_list[0]) from None
    check = getattr(filterset, "check_cleaned", None)
    if check is not None:
        error = check(cleaned)
        if error is not None:
            raise _refusal(*error)
    return cleaned


def filter_by_params(filterset_class, data, queryset):
    """`queryset` filtered by `filterset_class` from the query parameters `data` (as
    `filterset_class(data).qs`), or Rejected as `clean_filter_params`."""
    filterset, _fields = _template(filterset_class)
    queryset = queryset.all()
    for name, value in clean_filter_params(filterset_class, data).items():
        queryset = filterset.filters[name].filter(queryset, value)
    return queryset


class StrictFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend whose refusal is the API's one 400: Rejected(code, "<param> …").

    Filters through `filter_by_params` (no FilterSet per request); the browsable API's filter
    form and the OpenAPI parameters still come from the FilterSet.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        return filter_by_params(filterset_class, request.query_params, queryset)


class BoundaryField(forms.Field):
    """A form field whose value is parsed by one of the boundary's parsers (Rejected -> form error)."""

    def parse(self, value):
        raise NotImplementedError

    def clean(self, value):
        # Absent is None; present but empty is parsed (and refused) like any other value.
        if value is None:
            return None
        try:
            return self.parse(value)
        except Rejected as exc:
            raise forms.ValidationError(exc.detail, code=exc.code) from None


class RepeatedCSVWidget(CSVWidget):
    """Accepts `projectIds=a,b`, `projectIds=a&projectIds=b`, or both."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        values = [str(value) for value in values if value]
        return values or None


class ChoiceField(BoundaryField):
    def __init__(self, *, choices, **kwargs):
        self.choices = [value for value, _ in choices]
        super().__init__(**kwargs)

    def parse(self, value):
        return parse_choice(value, field=self.label, choices=self.choices)


class StrictChoiceFilter(django_filters.ChoiceFilter):
    """One of `choices`, exactly; an empty or unknown value is a 400 listing them."""

    field_class = ChoiceField


class ModelIdsField(BoundaryField):
    widget = RepeatedCSVWidget

    def parse(self, value):
        return parse_id_list(value, field=self.label) or None

    def clean(self, value):
        return None if not value else super().clean(value)  # `projectIds=` selects every model


@extend_schema_field(ID_LIST_PARAM)
class ModelIdsFilter(django_filters.Filter):
    """Rows of the given model ids (`field_name` = "model__model_id").

    The ids are turned into primary keys first (one indexed query), so the rows are then read
    through their own (model, ...) index instead of a join the planner may sort (7-9 ms vs 1 ms on
    a million predictions).
    """

    field_class = ModelIdsField

    def filter(self, qs, value):
        if not value:
            return qs
        pks = list(ParticipantModel.objects.filter(model_id__in=value).values_list("pk", flat=True))
        return qs.filter(model_id__in=pks)


class IdField(BoundaryField):
    def parse(self, value):
        return parse_whole_number(value, field=self.label, minimum=1, maximum=MAX_DB_ID)


@extend_schema_field(ID_PARAM)
class IdFilter(django_filters.Filter):
    """A database id: ASCII digits, 1 to 2**63 - 1 (no sign, decimals or exponents)."""

    field_class = IdField


class HorizonField(BoundaryField):
    def parse(self, value):
        return parse_whole_number(value, field=self.label, minimum=0, maximum=2**31 - 1)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 2**31 - 1})
class HorizonFilter(django_filters.Filter):
    """A horizon in whole seconds (what PredictionConfig.horizon_seconds can hold)."""

    field_class = HorizonField


class UtcDateTimeField(BoundaryField):
    def parse(self, value):
        return parse_utc_datetime(value, field=self.label)


@extend_schema_field(DATETIME_PARAM)
class UtcDateTimeFilter(django_filters.Filter):
    """ISO 8601 with `Z` or any offset (naive = UTC), normalised to UTC before it reaches SQL."""

    field_class = UtcDateTimeField


class TimeRangeMixin:
    """The two bounds named in `range_params` in order (the later one must not be before the first)."""

    range_params = ("start", "end")

    def check_cleaned(self, cleaned: dict) -> tuple[str, forms.ValidationError] | None:
        """(parameter, error) if the bounds are out of order, else None."""
        low, high = (cleaned.get(name) for name in self.range_params)
        if low and high and low > high:
            message = f"{self.range_params[1]} must not be before {self.range_params[0]}"
            return self.range_params[1], forms.ValidationError(message, code="OUT_OF_RANGE")
        return None

    def is_valid(self):
        valid = super().is_valid()
        if valid:
            error = self.check_cleaned(self.form.cleaned_data)
            if error is not None:
                self.form.add_error(*error)
                return False
        return valid


class PredictionFilter(TimeRangeMixin, django_filters.FilterSet):
    projectIds = ModelIdsFilter(
        label="projectIds", field_name="model__model_id", help_text="Model ids, comma-joined or repeated."
    )
    model_id = ModelIdsFilter(
        label="model_id", field_name="model__model_id", help_text="Model ids, comma-joined or repeated."
    )
    scope_key = django_filters.CharFilter(field_name="scope_key")
    config = IdFilter(label="config", field_name="config_id", help_text="PredictionConfig id.")
    subject = django_filters.CharFilter(
        label="subject", field_name="input__scope__subject", help_text="The asset (scope.subject)."
    )
    horizon_seconds = HorizonFilter(
        label="horizon_seconds", field_name="config__horizon_seconds", help_text="The prediction config's horizon."
    )
    status = StrictChoiceFilter(label="status", choices=PredictionStatus.choices)
    failure_reason = StrictChoiceFilter(label="failure_reason", choices=FailureReason.choices)
    start = UtcDateTimeFilter(
        label="start", field_name="performed_at", lookup_expr="gte", help_text="performed_at >= start"
    )
    end = UtcDateTimeFilter(label="end", field_name="performed_at", lookup_expr="lt", help_text="performed_at < end")

    class Meta:
        model = Prediction
        fields = []


class SnapshotFilter(TimeRangeMixin, django_filters.FilterSet):
    range_params = ("since", "until")

    model_id = ModelIdsFilter(
        label="model_id", field_name="model__model_id", help_text="Model ids, comma-joined or repeated."
    )
    since = UtcDateTimeFilter(
        label="since", field_name="period_start", lookup_expr="gte", help_text="period_start >= since"
    )
    until = UtcDateTimeFilter(
        label="until", field_name="period_start", lookup_expr="lt", help_text="period_start < until"
    )

    class Meta:
        model = Snapshot
        fields = []


class FeedRecordFilter(django_filters.FilterSet):
    source = django_filters.CharFilter()
    subject = django_filters.CharFilter()
    kind = django_filters.CharFilter()
    granularity = django_filters.CharFilter()

    class Meta:
        model = FeedRecord
        fields = []


class CheckpointFilter(django_filters.FilterSet):
    status = StrictChoiceFilter(label="status", choices=CheckpointStatus.choices)

    class Meta:
        model = Checkpoint
        fields = []
