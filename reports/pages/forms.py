"""Filter forms of the HTML pages."""

from datetime import UTC

from django import forms

from predictions.choices import PredictionStatus


class PredictionFilterForm(forms.Form):
    """Filters of the predictions page. Times are read in TIME_ZONE, which is UTC like every time shown."""

    model = forms.ChoiceField(required=False, label="Model")
    config = forms.ChoiceField(required=False, label="Config (scope_key)")
    status = forms.ChoiceField(required=False, choices=[("", "any"), *PredictionStatus.choices], label="Status")
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
    )

    def __init__(self, *args, models: list[tuple[str, str]], configs: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "any"), *models]
        self.fields["config"].choices = [("", "any"), *configs]

    def clean(self):
        cleaned = super().clean()
        for name in ("since", "until"):  # any ISO offset is accepted; SQL gets UTC (PostgreSQL caps offsets)
            if cleaned.get(name):
                cleaned[name] = cleaned[name].astimezone(UTC)
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            raise forms.ValidationError("'From' must be before 'Until'.")
        return cleaned
