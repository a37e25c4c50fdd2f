"""A replay report as text: what an operator reads (`--json` gives the report itself)."""

from typing import Any


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _pct(frac64: Any) -> str:
    return "-" if frac64 is None else f"{frac64 / 1e7:.4f}%"


def report_text(report: dict[str, Any], *, what_if: bool) -> str:
    """Counts, then per checkpoint (root identical or not), then per model stored -> replayed."""
    lines = []
    spec = report["spec"]
    lines.append(f"replay [{spec['start']}, {spec['end']}) data from {spec['scratch_start']}")
    if report["settings"]["slots"] or report["settings"]["MISSING_PREDICTION_POLICY"]:
        lines.append(
            f"  slots: {report['settings']['slots']} policy: {report['settings']['MISSING_PREDICTION_POLICY']!r}"
        )
    for name in ("scores", "snapshots", "leaderboards"):
        part = report[name]
        lines.append(f"  {name}: {part['compared']} compared, {part['differ']} differ")
    if "ground_truth" in report:
        gt = report["ground_truth"]
        lines.append(f"  TAPE CHANGED: {gt['changed']} of {gt['compared']} inputs resolve differently now")
    for error in report["errors"]:
        lines.append(f"  error: {error}")
    for c in report["checkpoints"]["checkpoints"]:
        if c["identical"]:
            state = "identical"
        elif c["category"] == "forced":
            state = f"forced build (not failed): differs in {', '.join(c['differences'])}"
        elif c["category"] == "legacy":
            state = f"built before settled periods (not failed): differs in {', '.join(c['differences'])}"
        else:
            state = f"DIFFERS in {', '.join(c['differences'])}"
        root = "root identical" if c["root_identical"] else f"root {c['stored_root']} -> {c['replayed_root']}"
        lines.append(f"  checkpoint {c['live_id']} [{c['period_start']}, {c['period_end']}): {state}; {root}")
    lines.append("  model: score stored -> replayed | leaderboard rank | per checkpoint rank, reward")
    for m in report["models"]:
        changed = (
            m["stored_score"] != m["replayed_score"] or m["stored_leaderboard_rank"] != m["replayed_leaderboard_rank"]
        )
        cells = []
        for c in m["checkpoints"]:
            moved = c["stored_rank"] != c["replayed_rank"] or c["stored_reward_pct"] != c["replayed_reward_pct"]
            changed = changed or moved
            cells.append(
                f"{c['period_start'][:16]} rank {_num(c['stored_rank'])}->{_num(c['replayed_rank'])} "
                f"reward {_pct(c['stored_reward_pct'])}->{_pct(c['replayed_reward_pct'])}"
            )
        mark = "*" if changed else " "
        lines.append(
            f"  {mark} {m['model_id']}: {_num(m['stored_score'])} -> {_num(m['replayed_score'])} | "
            f"{_num(m['stored_leaderboard_rank'])} -> {_num(m['replayed_leaderboard_rank'])} | " + "; ".join(cells)
        )
    verdict = "what-if (nothing is failed)" if what_if else ("IDENTICAL" if report["identical"] else "DIFFERS")
    lines.append(f"  result: {verdict} ({report['seconds']:.1f} s)")
    return "\n".join(lines)
