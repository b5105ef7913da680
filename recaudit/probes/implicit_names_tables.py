"""Tables and figures of the implicit-name probe: per-group rows, category-share bars, implicit vs explicit."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from recaudit.probes.implicit_names_stats import NameUnit, nanmean
from recaudit.results import FigureSpec, GroupTable, Series


def group_rows(units: Sequence[NameUnit], grouping: str, domain: str, condition: str, category_ids: list[str],
               k: int) -> list[list]:
    """Rows of the by_group table: per group ranking quality, parse/grounding rates, top category."""
    from fairlearn.metrics import MetricFrame

    per_unit = {
        f"ndcg@{k}": np.array([np.mean(u.ndcg) if u.ndcg else np.nan for u in units]),
        f"mrr@{k}": np.array([np.mean(u.mrr) if u.mrr else np.nan for u in units]),
        "parse_rate": np.array([np.mean(u.parsed_ok) for u in units]),
        "grounded_rate": np.array([sum(u.mapped) / max(sum(u.n_items), 1) for u in units]),
    }
    # MetricFrame slices row indices by group; each metric averages its per-name column
    metrics = {name: (lambda idx, _pred, col=col: nanmean(col[idx])) for name, col in per_unit.items()}
    metrics["n_names"] = lambda idx, _pred: float(len(idx))
    rows_idx = np.arange(len(units))
    frame = MetricFrame(metrics=metrics, y_true=rows_idx, y_pred=rows_idx,
                        sensitive_features=np.array([getattr(u.record, grouping) for u in units]))
    out = []
    for group, row in frame.by_group.iterrows():
        members = [u for u in units if getattr(u.record, grouping) == group]
        total = np.sum([u.counts for u in members], axis=0)
        top = int(total.argmax())
        share = float(total[top] / total.sum()) if total.sum() > 0 else math.nan
        out.append([domain, condition, grouping, str(group), int(row["n_names"]), row[f"ndcg@{k}"],
                    row[f"mrr@{k}"], row["parse_rate"], row["grounded_rate"],
                    category_ids[top] if total.sum() > 0 else "", share])
    return out

def share_figure(units: Sequence[NameUnit], grouping: str, domain: str, category_ids: list[str]) -> FigureSpec:
    """Bar chart of each group's category shares on name-only prompts."""
    groups = sorted({getattr(u.record, grouping) for u in units})
    dists = {}
    for g in groups:
        total = np.sum([u.counts for u in units if getattr(u.record, grouping) == g], axis=0)
        dists[g] = total / total.sum() if total.sum() > 0 else total
    shown = [j for j in range(len(category_ids)) if any(dists[g][j] > 0 for g in groups)]
    return FigureSpec(
        name=f"category_share.{domain}.{grouping}", kind="bar",
        title=f"Category share by {grouping} — {domain}, names only",
        x_label="category", y_label="share of recommended items",
        series=[Series(label=g, x=[category_ids[j] for j in shown], y=[float(dists[g][j]) for j in shown]) for g in groups],
        caption="Share of each category among the items recommended to each name group when only the name is "
        "given; bars that differ between groups = the name changes what is recommended.",
    )


def comparison_table(comparison: dict[tuple[str, str, str], dict[str, float]]) -> GroupTable:
    """The implicit-vs-explicit-prompt table: each measure with the attribute implied and stated."""
    rows = []
    for (domain, grouping, measure), by_cond in comparison.items():
        imp, exp = by_cond.get("implicit", math.nan), by_cond.get("explicit", math.nan)
        ratio = imp / exp if exp and math.isfinite(exp) and exp != 0 else math.nan
        rows.append([domain, grouping, measure, imp, exp, imp - exp, ratio])
    return GroupTable(
        name="implicit_vs_explicit",
        columns=["domain", "grouping", "measure", "implicit", "explicit", "implicit_minus_explicit", "ratio"],
        rows=rows,
        description="The same users with the attribute only implied by the name (implicit) or stated (explicit).",
    )


__all__ = ["comparison_table", "group_rows", "share_figure"]
