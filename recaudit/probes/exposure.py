"""Item exposure under prompting strategies and system roles (Deldjoo 2024), beside classical baselines.

Deldjoo, "Understanding Biases in ChatGPT-based Recommender Systems: Provider Fairness, Temporal
Stability, and Recency", ACM TORS 2024 (arXiv 2401.10545).

Every sampled user is asked for k items under each prompting strategy (Simple, Genre-focused,
Diversify, Surprise, Motivate reasoning, Chain-of-thought; item_prompts.yaml) and each system
role (a plain recommender vs "a fair recommender"). Titles are parsed and grounded to the
catalogue; over all users of one (strategy, role) cell, item i's exposure e_i is how often it
was recommended. Concentration of exposure (``recaudit.metrics.concentration``): Gini (↓, over
the whole catalogue when ``include_unexposed``), HHI (↓), Shannon entropy in nats (↑), catalogue
coverage (↑), and recency (median / std of release years). TopPop, ItemKNN and BPR-MF, fitted
in-process on the same training split, give the same numbers on the same users.

Uncertainty. The pooled statistics depend on how many users are pooled, so their estimand is
θ_n, the expected value at this audit's n users; their intervals are delete-d jackknife
t-intervals over users, d = n/10 for Gini and coverage (``metrics.concentration``: the bootstrap's duplicated users bias
pooled statistics), clipped to each statistic's range, with simulated coverage 93–97% at the default n
and 4× (benchmarks/results/validity_itemfair.json). For each strategy, the change of Gini, HHI,
entropy and coverage under every other role against the first one
(``exposure.<stat>_change``, ``coverage_change``) has a paired jackknife interval and a
two-sided label-swap test over users (each user's two lists swapped; exact over all 2^n swaps
when they fit), Holm-adjusted per statistic across strategy × role pairs, with its exact p floor
and minimum detectable effect. Recency summaries keep percentile-bootstrap CIs.

Metric names: declared once, ``probes.item_metrics.EXPOSURE_METRICS``; the intervals and the
role-change tests: ``probes.exposure_stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field, field_validator

from recaudit.adapters.base import Request, Response
from recaudit.check_parsing import ParsesAnswersEarly, parse_answer
from recaudit.checks import Answer, CheckContext, Probe, register_check
from recaudit.probes.item_metrics import EXPOSURE_METRICS
from recaudit.data.catalog import Catalog
from recaudit.metrics.concentration import STAT_NAMES, exposure_matrix, jackknife_method, lorenz_curve, recency_from_exposure
from recaudit.metrics.ranking import mean_over_users, ndcg_of_list, recall_at_k
from recaudit.metrics.concentration import genre_dominance, genre_shares, temporal_stability
from recaudit.probes.exposure_stats import cell_statistics, role_changes
from recaudit.probes.item_common import (
    GroundedAnswer, ItemProbeParams, UserSplit, baseline_lists, bullet_list, ci_or_none, ground_answer,
    grounded_outcome, grounded_rate, grounding_counts, hit_rate, load_prompts, make_grounder, split_users,
    top_genres, training_interactions,
)
from recaudit.text.prompts import check_placeholders
from recaudit.metrics.stats import bootstrap_or_point
from recaudit.results import CheckResult, Example, FigureSpec, GroupTable, MetricValue, Series
from recaudit.text.parse import parse_list

STRATEGIES = ("simple", "genre_focused", "diversify", "surprise", "motivate_reasoning", "cot")

# Deldjoo 2024, ChatGPT with the plain recommender role (Gini, HHI, entropy), as in the spec.
PUBLISHED_CHATGPT = {
    "simple": (0.982, 0.0172, 5.04), "genre_focused": (0.965, 0.0065, 5.92), "diversify": (0.992, 0.0347, 4.23),
    "surprise": (0.998, 0.0599, 3.23), "motivate_reasoning": (0.982, 0.0192, 5.03), "cot": (0.987, 0.0270, 4.62),
}
PUBLISHED_BASELINE_GINI = {"bpr": 0.992, "itemknn": 0.914, "toppop": 0.995}
_MAX_EXAMPLE_CHARS = 1200


class ExposureParams(ItemProbeParams):
    """Settings of the exposure probe (defaults: the six strategies × plain/fair role, three baselines)."""

    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)
    system_prompts: list[str] = Field(default_factory=lambda: ["normal", "fair"], min_length=1,
                                      description="keys of item_prompts.yaml system_prompts; the first is the reference")
    include_unexposed: bool = Field(True, description="Gini over the whole catalogue (never-recommended items as zeros)")
    lorenz_points: int = Field(101, ge=3, description="points per Lorenz curve in the figure")
    year_bin: int = Field(5, ge=1, description="width in years of the release-year histogram's bins")
    n_repeats: int = Field(1, ge=1, le=20, description="times each prompt is asked (seeds seed..seed+n−1); ≥ 2 adds "
                           "temporal stability")

    @field_validator("strategies", "system_prompts")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"entries must not repeat, got {v}")
        return v


@dataclass(frozen=True)
class _Cell:
    """One row of the grid: a (strategy, role) of the model, or a baseline."""

    label: str
    strategy: str
    system: str
    lists: list[list[str]]
    answers: list[GroundedAnswer] | None = None


@register_check("exposure")
class ExposureProbe(ParsesAnswersEarly, Probe[ExposureParams]):
    """Gini/HHI/entropy/coverage/recency of item exposure per prompting strategy and system role."""

    min_usable = 0.5  # pooled exposure statistics tolerate some short lists

    title = "Item exposure: concentration and recency under prompting strategies"
    risk = "fairness"
    references = (
        "Deldjoo, Understanding Biases in ChatGPT-based Recommender Systems: Provider Fairness, Temporal Stability, "
        "and Recency, ACM TORS 2024, arXiv:2401.10545",
    )
    Params = ExposureParams
    params: ExposureParams
    metrics = EXPOSURE_METRICS

    # --- inputs --------------------------------------------------------------------------------

    def templates(self) -> tuple[dict[str, str], dict[str, str]]:
        """(strategy -> user template, role -> system prompt) for the configured grid, after overrides."""
        data = load_prompts(self.params.prompts, "exposure.prompts")
        strategies, systems = data["strategies"], data["system_prompts"]
        for kind, wanted, known in (("strategies", self.params.strategies, strategies),
                                    ("system_prompts", self.params.system_prompts, systems)):
            unknown = [s for s in wanted if s not in known]
            if unknown:
                raise ValueError(f"exposure.{kind}: unknown {unknown}; item_prompts.yaml has {sorted(known)}")
        for s in self.params.strategies:
            check_placeholders(strategies[s], {"history", "k"}, f"exposure.prompts.strategies.{s}",
                               {"history", "k", "item_noun", "genres"})
        for s in self.params.system_prompts:
            check_placeholders(systems[s], set(), f"exposure.prompts.system_prompts.{s}", {"item_noun"})
        return ({s: strategies[s] for s in self.params.strategies},
                {s: systems[s] for s in self.params.system_prompts})

    def _prepare(self, ctx: CheckContext) -> tuple[Catalog, list[UserSplit]]:
        catalog = ctx.require_catalog(self.name)
        interactions = ctx.require_interactions(self.name)
        missing = set(interactions.frame["item_id"].unique()) - set(catalog.ids)
        if missing:
            raise ValueError(f"check {self.name!r}: {len(missing)} interaction items are not in the catalogue, "
                             f"e.g. {sorted(missing)[:3]}")
        return catalog, split_users(interactions, self.params, self.name)

    # --- requests ------------------------------------------------------------------------------

    def requests(self, ctx: CheckContext) -> list[Request]:
        """One prompt per user × strategy × system role."""
        catalog, splits = self._prepare(ctx)
        strategies, systems = self.templates()
        p = self.params
        out = []
        for repeat in range(p.n_repeats):
            settings = p.generation_settings()
            settings["seed"] = p.seed + repeat  # a repeat is the same prompt asked again (temporal stability)
            for strategy, template in strategies.items():
                for system, system_text in systems.items():
                    for s in splits:
                        user = template.format(history=bullet_list(catalog, s.history), k=p.k, item_noun=p.item_noun,
                                               genres=top_genres(catalog, s.history))
                        meta = (("user_id", s.user_id), ("strategy", strategy), ("system", system))
                        out.append(Request.chat(
                            user, system=system_text.format(item_noun=p.item_noun),
                            metadata=meta + ((("repeat", repeat),) if repeat else ()), **settings,
                        ))
        return out

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        """Ground every answer, then the concentration metrics per grid cell and per baseline."""
        p = self.params
        catalog, splits = self._prepare(ctx)
        train = training_interactions(ctx.require_interactions(self.name), splits)
        grounder = make_grounder(catalog, p)
        memo = self.take_answer_memo()
        by_cell: dict[tuple[str, str, int], dict[str, Answer]] = {}
        for a in answers:
            m = a.request.meta()
            by_cell.setdefault((m["strategy"], m["system"], int(m.get("repeat", 0))), {})[m["user_id"]] = a
        repeat_lists: dict[tuple[str, str], list[list[list[str]]]] = {}
        cells: list[_Cell] = []
        for strategy in p.strategies:
            for system in p.system_prompts:
                runs = []
                for rep in range(p.n_repeats):
                    got = by_cell.get((strategy, system, rep), {})
                    asked = [got.get(s.user_id) for s in splits]
                    replies = [Response(text="", error="no response") if a is None else a.response for a in asked]
                    grounded = [ground_answer(parse_answer(memo, r, p.k), grounder) for r in replies]
                    for a, g in zip(asked, grounded):
                        if a is not None and not a.response.error:
                            a.mark(grounded_outcome(g), parse=g.parsed.items, grounded=[x.item_id for x in g.groundings])
                    runs.append((grounded, [g.items for g in grounded]))
                repeat_lists[(strategy, system)] = [lists for _, lists in runs]
                grounded, lists = runs[0]
                cells.append(_Cell(f"{strategy} · {system}", strategy, system, lists, grounded))
        base = baseline_lists(ctx, p, train, splits)
        cells += [_Cell(name, "-", "-", lists) for name, lists in base.items()]

        ids = catalog.ids
        years = [catalog.get(i).year for i in ids]
        mats = {c.label: exposure_matrix(c.lists, ids) for c in cells}
        history_mat = exposure_matrix([s.history for s in splits], ids)
        result = self.new_result()
        rows = []
        for c_idx, cell in enumerate(cells):
            stats = cell_statistics(mats[cell.label], years, p.seed + c_idx, ci_level=p.ci_level,
                                    n_bootstrap=p.n_bootstrap, include_unexposed=p.include_unexposed)
            extra = {"grounded_rate": grounded_rate(cell.answers) if cell.answers else float("nan"),
                     "hit_rate": hit_rate(cell.lists, splits)}
            self._append_metrics(result, cell, stats, extra, len(splits))
            rows.append([cell.label, cell.strategy, cell.system, len(splits), extra["grounded_rate"],
                         *[v for key in ("gini", "hhi", "entropy", "coverage") for v in stats[key]],
                         stats["median_year"][0], stats["std_year"][0], extra["hit_rate"]])
        role_changes(result, mats, p.strategies, p.system_prompts, include_unexposed=p.include_unexposed,
                     ci_level=p.ci_level, n_permutations=p.n_permutations, seed=p.seed, alpha=p.alpha)
        hist_rec = recency_from_exposure(history_mat.sum(axis=0), years)
        result.metrics.append(MetricValue(
            name="history.median_year", value=hist_rec.median_year, n=hist_rec.n, direction="neutral",
            description="median release year of the users' history items (the recency reference)",
        ))
        result.tables.append(GroupTable(
            name="exposure_grid",
            columns=["recommender", "strategy", "system", "n_users", "grounded_rate",
                     *[f"{m}{suf}" for m in ("gini", "hhi", "entropy", "coverage") for suf in ("", "_ci_low", "_ci_high")],
                     "median_year", "std_year", "hit_rate"],
            rows=rows,
            description=f"Exposure over {len(ids)} catalogue items of {len(splits)} users' top-{p.k} lists; "
            f"Gini {'includes' if p.include_unexposed else 'excludes'} never-recommended items; entropy in nats; "
            f"{int(p.ci_level * 100)}% jackknife t-intervals over users for Gini/HHI/entropy/coverage (of their "
            "expected value at this many users). Baseline rows: classical models on the same users.",
        ))
        result.tables.append(self._published_table())
        self._grounding_table(result, cells)
        self._deldjoo_measures(result, catalog, cells, splits, repeat_lists)  # tables after the existing ones
        self._figures(result, cells, mats, history_mat, years)
        result.examples = self._examples(answers)
        result.notes += self._notes(splits, cells, train)
        return result

    def _append_metrics(self, result: CheckResult, cell: _Cell, stats, extra, n: int) -> None:
        level = self.params.ci_level
        spec = {
            "gini": ("exposure.gini", "lower_is_better", "Gini coefficient of item exposure"),
            "hhi": ("exposure.hhi", "lower_is_better", "HHI (sum of squared exposure shares)"),
            "entropy": ("exposure.entropy", "higher_is_better", "Shannon entropy of exposure shares (nats)"),
            "coverage": ("coverage", "higher_is_better", "share of catalogue items recommended at least once"),
            "median_year": ("recency.median_year", "neutral", "median release year of recommended items"),
            "std_year": ("recency.std_year", "neutral", "std of release years of recommended items"),
        }
        baseline = cell.answers is None
        for key, (prefix, direction, text) in spec.items():
            value, low, high = stats[key]
            name = f"baseline.{cell.label}.{key}" if baseline else f"{prefix}.{cell.strategy}.{cell.system}"
            method = jackknife_method(n, key) if key in STAT_NAMES else ("percentile-bootstrap" if self.params.n_bootstrap else None)
            result.metrics.append(MetricValue(
                name=name, value=value, ci_low=low, ci_high=high, ci_level=level, ci_method=method, n=n,
                direction=direction, description=f"{text} — {cell.label}",
            ))
        for key, value in extra.items():
            if baseline and key == "grounded_rate":
                continue
            name = f"baseline.{cell.label}.{key}" if baseline else f"{key}.{cell.strategy}.{cell.system}"
            result.metrics.append(MetricValue(name=name, value=value, n=n, direction="higher_is_better",
                                              description=f"{key.replace('_', ' ')} — {cell.label}"))

    def _deldjoo_measures(self, result: CheckResult, catalog: Catalog, cells: list[_Cell], splits, repeat_lists) -> None:
        """Deldjoo 2024's prompting-side measures: ranking accuracy on held-out likes (nDCG, recall), genre
        dominance (share of the most recommended genre) and, with ``n_repeats`` ≥ 2, temporal stability."""
        p = self.params
        genres = catalog.genres()
        genres_of = {it.item_id: it.genres for it in catalog.items}
        heldout = [list(s.heldout) for s in splits]
        share_rows = []
        for c_idx, cell in enumerate(cells):
            baseline = cell.answers is None
            key = (f"baseline.{cell.label}" if baseline else "{m}.%s.%s" % (cell.strategy, cell.system))
            for m, fn in (("ndcg", ndcg_of_list), ("recall", recall_at_k)):
                vals = mean_over_users(fn, cell.lists, heldout, p.k)
                vals = vals[np.isfinite(vals)]
                iv = bootstrap_or_point(vals, np.mean, p.n_bootstrap, p.ci_level, p.seed * 17 + c_idx) if vals.size else None
                result.metrics.append(MetricValue(
                    name=f"{key}.{m}" if baseline else key.format(m=m), value=iv.value if iv else float("nan"),
                    ci_low=ci_or_none(iv.low) if iv else None, ci_high=ci_or_none(iv.high) if iv else None,
                    ci_level=p.ci_level, ci_method="percentile-bootstrap" if p.n_bootstrap else None, n=int(vals.size),
                    direction="higher_is_better", description=f"{m}@{p.k} on the held-out liked items — {cell.label}",
                ))
            if genres:
                sh = genre_shares(cell.lists, genres_of, genres)
                j, top = genre_dominance(sh)
                result.metrics.append(MetricValue(
                    name=f"{key}.genre_dominance" if baseline else key.format(m="genre_dominance"), value=top,
                    n=len(splits), direction="lower_is_better",
                    description=f"share of the most recommended genre ({genres[j] if j >= 0 else '-'}) among item–genre "
                    f"incidences — {cell.label}",
                ))
                share_rows.append([cell.label, genres[j] if j >= 0 else None, *sh.tolist()])
        if share_rows:
            result.tables.append(GroupTable(
                name="genre_shares", columns=["recommender", "dominant_genre", *genres], rows=share_rows,
                description="Share of each genre among recommended items' item–genre incidences (genre dominance: "
                "Deldjoo 2024 compares the LLM's genre mix with the CF baselines').",
            ))
        if p.n_repeats < 2:
            return
        for (strategy, system), runs in repeat_lists.items():
            per_user = temporal_stability(runs)
            iv = bootstrap_or_point(per_user, np.mean, p.n_bootstrap, p.ci_level, p.seed + 3)
            result.metrics.append(MetricValue(
                name=f"stability.{strategy}.{system}", value=iv.value, ci_low=ci_or_none(iv.low), ci_high=ci_or_none(iv.high),
                ci_level=p.ci_level, n=len(per_user), direction="higher_is_better", variant="jaccard-over-repeats",
                description=f"temporal stability: mean Jaccard overlap of a user's lists over {p.n_repeats} repeats of "
                f"the same prompt (1 = identical) — {strategy} · {system}",
            ))

    def _published_table(self) -> GroupTable:
        rows = [[f"ChatGPT · {s}", *v] for s, v in PUBLISHED_CHATGPT.items()]
        rows += [[name, g, None, None] for name, g in PUBLISHED_BASELINE_GINI.items()]
        return GroupTable(
            name="published_deldjoo2024", columns=["recommender", "gini", "hhi", "entropy"], rows=rows,
            description="Published numbers (Deldjoo 2024, MovieLens, plain recommender role) for orientation only: "
            "other model, users, catalogue and grounding.",
        )

    def _grounding_table(self, result: CheckResult, cells: list[_Cell]) -> None:
        llm = [c for c in cells if c.answers is not None]
        keys = list(grounding_counts([]).keys())
        result.tables.append(GroupTable(
            name="grounding", columns=["cell", *keys],
            rows=[[c.label, *grounding_counts(c.answers).values()] for c in llm],
            description="Parsed titles by grounding method and answers by parse status, per grid cell.",
        ))

    def _figures(self, result, cells: list[_Cell], mats, history_mat: np.ndarray, years) -> None:
        p = self.params
        inc = p.include_unexposed
        lorenz = []
        for c in cells:
            x, y = lorenz_curve(mats[c.label].sum(axis=0), include_unexposed=inc, n_points=p.lorenz_points)
            lorenz.append(Series(label=c.label, x=x.tolist(), y=y.tolist()))
        result.figures.append(FigureSpec(
            name="lorenz_exposure", kind="lorenz", title="Lorenz curves of item exposure",
            x_label="cumulative share of items (least exposed first)", y_label="cumulative share of exposure",
            series=lorenz,
            caption="The further below the diagonal, the more exposure goes to few items (Gini = 1 − 2 × area). "
            + ("Never-recommended catalogue items are included." if inc else "Only recommended items are included."),
        ))
        matrix = [[next(m.value for m in result.metrics if m.name == f"exposure.gini.{s}.{r}") for r in p.system_prompts]
                  for s in p.strategies]
        result.figures.append(FigureSpec(
            name="gini_grid", kind="heatmap", title="Gini of item exposure by strategy and system role",
            matrix=matrix, row_labels=list(p.strategies), col_labels=list(p.system_prompts),
            caption="Lower = exposure spread over more items.",
        ))
        groups = {"history": history_mat.sum(axis=0)}
        for r in p.system_prompts:
            groups[f"model · {r}"] = sum(mats[c.label] for c in cells if c.system == r).sum(axis=0)
        for c in cells:
            if c.answers is None:
                groups[c.label] = mats[c.label].sum(axis=0)
        result.figures.append(self._year_histogram(groups, years))

    def _year_histogram(self, groups: dict[str, np.ndarray], years) -> FigureSpec:
        width = self.params.year_bin
        known = [y for y in years if y is not None]
        if not known:
            return FigureSpec(name="release_years", kind="histogram", title="Release years (no years in the catalogue)")
        lo, hi = (min(known) // width) * width, (max(known) // width + 1) * width
        edges = np.arange(lo, hi + width, width)
        centres = (edges[:-1] + width / 2).tolist()
        y_arr = np.array([np.nan if y is None else y for y in years], dtype=float)
        series = []
        for label, exposure in groups.items():
            keep = np.isfinite(y_arr) & (exposure > 0)
            counts, _ = np.histogram(y_arr[keep], bins=edges, weights=exposure[keep])
            total = counts.sum()
            series.append(Series(label=label, x=centres, y=(counts / total if total else counts).tolist()))
        return FigureSpec(
            name="release_years", kind="histogram", title="Release years of recommended items",
            x_label=f"release year ({width}-year bins)", y_label="share of recommendations", series=series,
            caption="Exposure-weighted release-year distribution: history items, the model per system role "
            "(all strategies pooled) and each baseline.",
        )

    def _examples(self, answers: list[Answer]) -> list[Example]:
        out, seen = [], set()
        for a in answers:
            req, resp = a.request, a.response
            m = req.meta()
            if m["strategy"] in seen or len(out) >= self.params.n_examples:
                continue
            seen.add(m["strategy"])
            parsed = parse_list(None if resp.error else resp.text, self.params.k).items
            out.append(Example(fields={
                "user_id": m["user_id"], "strategy": m["strategy"], "system": m["system"],
                "prompt": req.user_text[:_MAX_EXAMPLE_CHARS], "output": (resp.error or resp.text)[:_MAX_EXAMPLE_CHARS],
                "parsed": " | ".join(parsed),
            }))
        return out

    def _notes(self, splits, cells, train) -> list[str]:
        p = self.params
        return [
            f"{len(splits)} users × {len(p.strategies)} strategies × {len(p.system_prompts)} system roles; history = "
            f"last {p.history_len} liked items (rating > {p.liked_threshold}); k = {p.k}.",
            f"Baselines ({', '.join(p.baselines) or 'none'}) fitted on the training split ({len(train)} interactions), "
            "recommending unseen items only.",
            "Gini/HHI/entropy/coverage are of the pooled exposure over users and depend on how many are pooled: "
            "their CIs (delete-d jackknife, t; d = n/10 for Gini and coverage, else 1) are for the expected value at this many users.",
            "Published ChatGPT numbers (table published_deldjoo2024) come from another model and grounding; compare "
            "directions (which strategy concentrates more), not levels.",
        ]

