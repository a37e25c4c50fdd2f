"""Chart layout, cursors and formatting filters, without pages around them."""

from datetime import UTC, datetime, timedelta

import pytest

from reports.pages.charts import line_chart, sparkline
from reports.pages.selectors import BadCursor, decode_cursor, encode_cursor, unbuilt_checkpoint_periods
from reports.templatetags.pages import duration, frac64_percent, num, percent, utc
from tests.factories import T0, make_checkpoint, make_snapshot

T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_line_chart_breaks_the_line_at_missing_values_and_skips_empty_series():
    points = [(T + timedelta(hours=i), v) for i, v in enumerate([1.0, 2.0, None, 3.0, float("nan"), 4.0])]
    chart = line_chart([("a", points), ("empty", [(T, None)])])
    assert [line.name for line in chart.lines] == ["a"]
    assert chart.lines[0].path.count("M") == 3  # three runs: [1,2], [3], [4]
    assert chart.lines[0].points == 4
    assert chart.lines[0].last_label == "4"


def test_line_chart_spans_the_plot_and_puts_higher_values_higher():
    chart = line_chart([("p", [(T, 10.0), (T + timedelta(minutes=5), 20.0)])])
    (start, end) = chart.lines[0].path.split(" ")
    x0, y0 = (float(v) for v in start[1:].split(","))
    x1, y1 = (float(v) for v in end[1:].split(","))
    assert x0 == chart.left
    assert x1 == chart.right
    assert y1 < y0  # SVG y grows downwards
    assert chart.y_ticks[0].label == "10"
    assert chart.y_ticks[-1].label == "20"


def test_line_chart_of_nothing_is_empty_and_a_flat_series_is_still_drawn():
    assert line_chart([]).empty
    flat = line_chart([("f", [(T, 5.0), (T + timedelta(minutes=1), 5.0)])])
    assert not flat.empty
    assert "nan" not in flat.lines[0].path


def test_sparkline_needs_two_finite_points():
    assert sparkline([0.3]) == ""
    assert sparkline([None, 0.3]) == ""
    assert len(sparkline([0.3, None, 0.2, 0.25]).split(" ")) == 3


def test_cursor_round_trip_and_bad_cursors():
    t = datetime(2026, 11, 2, 0, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(t, 42)) == (t, 42)
    for bad in ("", "12", "a.b", "1.-2", "99999999999999999999999.1"):
        with pytest.raises(BadCursor):
            decode_cursor(bad)


@pytest.mark.django_db
def test_unbuilt_checkpoint_periods_count_ended_periods_after_the_newest_checkpoint():
    assert unbuilt_checkpoint_periods(now=T0) == 0  # no data at all
    make_snapshot(period_start=T0 + timedelta(hours=5))
    assert unbuilt_checkpoint_periods(now=T0 + timedelta(days=6)) == 0  # period not ended
    assert unbuilt_checkpoint_periods(now=T0 + timedelta(days=15)) == 2
    make_checkpoint(period_start=T0)
    assert unbuilt_checkpoint_periods(now=T0 + timedelta(days=15)) == 1


def test_formatting_filters():
    assert num(1234567) == "1,234,567"
    assert num(0.123456) == "0.1235"
    assert num(None) == "—"
    assert num(float("inf")) == "—"
    assert percent(0.875) == "87.5 %"
    assert frac64_percent(333_333_334) == "33.3333 %"
    assert duration(timedelta(days=1, hours=2, minutes=3)) == "1 d 2 h"
    assert duration(timedelta(milliseconds=250)) == "250 ms"
    html = utc(datetime(2026, 11, 2, 13, 4, 5, tzinfo=UTC))
    assert html == (
        '<time datetime="2026-11-02T13:04:05+00:00" title="2026-11-02T13:04:05+00:00">2026-11-02 13:04:05 UTC</time>'
    )
