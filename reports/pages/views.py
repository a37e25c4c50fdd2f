"""HTML pages: each view parses its input, calls selectors and renders one template."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from checkpoints.admin import next_advance
from checkpoints.choices import CheckpointStatus
from checkpoints.selectors import late_scores_of
from coordinator_site.contract import get_contract
from predictions.selectors import model_by_id
from reports.pages import selectors
from reports.pages.charts import line_chart, sparkline
from reports.pages.forms import PredictionFilterForm
from scoring.selectors import leaderboard_latest

PREDICTIONS_PAGE_SIZE = 50
CHECKPOINTS_PAGE_SIZE = 25
MODEL_RECENT_PREDICTIONS = 20
MODEL_RECENT_SNAPSHOTS = 24
MODEL_DEPLOYMENTS = 20


def leaderboard(request: HttpRequest) -> HttpResponse:
    aggregation = get_contract().aggregation
    board = leaderboard_latest()
    rows = selectors.leaderboard_rows(board)
    if board is not None:
        trends = selectors.score_trends([row["model_id"] for row in rows], until=board.created_at)
        for row in rows:
            row["trend"] = sparkline(trends.get(row["model_id"], []))
            row["window_values"] = [row["metrics"].get(name) for name in aggregation.windows]
    return render(
        request,
        "pages/leaderboard.html",
        {
            "board": board,
            "rows": rows,
            "windows": list(aggregation.windows),
            "aggregation": aggregation,
        },
    )


def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    model = model_by_id(model_id)
    if model is None:
        raise Http404(f"No model with id {model_id!r} is known to this node.")
    chart = line_chart(selectors.model_window_series(model))
    deployments = list(model.deployments.order_by("-first_seen_at")[:MODEL_DEPLOYMENTS])
    predictions = list(selectors.prediction_list(model_id=model.model_id)[:MODEL_RECENT_PREDICTIONS])
    snapshots = list(model.snapshots.order_by("-period_start")[:MODEL_RECENT_SNAPSHOTS])
    return render(
        request,
        "pages/model_detail.html",
        {
            "model": model,
            "chart": chart,
            "deployments": deployments,
            "predictions": predictions,
            "snapshots": snapshots,
            "value_field": get_contract().aggregation.value_field,
        },
    )


def predictions(request: HttpRequest) -> HttpResponse:
    form = PredictionFilterForm(
        request.GET or None, models=selectors.model_choices(), configs=selectors.config_choices()
    )
    page, error = None, ""
    if form.is_bound and not form.is_valid():
        error = "Fix the filters below."
    else:
        data = form.cleaned_data if form.is_bound else {}
        qs = selectors.prediction_list(
            model_id=data.get("model") or "",
            scope_key=data.get("config") or "",
            status=data.get("status") or "",
            since=data.get("since"),
            until=data.get("until"),
        )
        try:
            page = selectors.keyset_page(
                qs,
                time_field="performed_at",
                size=PREDICTIONS_PAGE_SIZE,
                before=request.GET.get("before"),
                after=request.GET.get("after"),
            )
        except selectors.BadCursor as exc:
            error = str(exc)
    filtered = any(request.GET.get(key) for key in ("model", "config", "status", "since", "until"))
    return render(
        request,
        "pages/predictions.html",
        {"form": form, "page": page, "error": error, "filtered": filtered},
        status=400 if error else 200,
    )


def feeds(request: HttpRequest) -> HttpResponse:
    rows = selectors.feed_overview(now=timezone.now())
    for row in rows:
        row["chart"] = line_chart([("price", row["prices"])], height=200)
    return render(request, "pages/feeds.html", {"feeds": rows})


def checkpoints(request: HttpRequest) -> HttpResponse:
    page, error = None, ""
    try:
        page = selectors.keyset_page(
            selectors.checkpoint_list(),
            time_field="period_end",
            size=CHECKPOINTS_PAGE_SIZE,
            before=request.GET.get("before"),
            after=request.GET.get("after"),
        )
    except selectors.BadCursor as exc:
        error = str(exc)
    unbuilt, readiness = selectors.next_checkpoint_readiness(now=timezone.now())
    return render(
        request,
        "pages/checkpoints.html",
        {"page": page, "error": error, "unbuilt": unbuilt, "readiness": readiness},
        status=400 if error else 200,
    )


def checkpoint_detail(request: HttpRequest, checkpoint_id: int) -> HttpResponse:
    found = selectors.checkpoint_detail(checkpoint_id)
    if found is None:
        raise Http404(f"No checkpoint with id {checkpoint_id}.")
    checkpoint, transitions, leaf_count = found
    emission = checkpoint.emission or {}
    return render(
        request,
        "pages/checkpoint_detail.html",
        {
            "checkpoint": checkpoint,
            "transitions": transitions,
            "leaf_count": leaf_count,
            "can_confirm": checkpoint.status == CheckpointStatus.PENDING,
            "advance_to": next_advance(checkpoint),
            "ranking": checkpoint.ranking or [],
            "late_scores": late_scores_of(checkpoint),
            "verification": (checkpoint.meta or {}).get("verification") or {},
            "emission": emission,
            "reward_lists": [
                ("Crunchers", "cruncher_index", emission.get("cruncher_rewards") or []),
                ("Compute providers", "provider", emission.get("compute_provider_rewards") or []),
                ("Data providers", "provider", emission.get("data_provider_rewards") or []),
            ],
        },
    )


def health(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    overview = selectors.health_overview()
    live = selectors.live_process_counts(now=now)
    workers = [check for check in overview.by_stage("worker") if check.row is not None]
    for check in workers:
        check.live = live.get(check.name, 0)
    return render(
        request,
        "pages/health.html",
        {
            "overview": overview,
            "stages": [c for c in overview.checks if c.stage in ("predict", "score", "checkpoint")],
            "missing_workers": [check for check in overview.by_stage("worker") if check.row is None],
            "workers": workers,
            "feeds": overview.by_stage("feed"),
            "queues": selectors.queue_depths(now=now),
            "now": now,
        },
    )
