"""Turn a ``ShillingRun`` into metrics with CIs, tables, a figure and examples (pure; no model).

Metric names (``<victim>`` is ``pyes`` or ``ranking``; ``<attack>`` the reported variant, e.g.
``deepwordbug`` or ``textfooler-wordnet``; ``<defense>`` ``llm_rewrite``/``spell``/``detector``):

- ``exposure.clean.<victim>`` — held-out exposure of the clean title (bootstrap CI over users);
- ``exposure.attacked.<attack>.<victim>``, ``exposure.defended.<attack>.<defense>.<victim>``;
- ``exposure.lift.<attack>.<victim>`` — attacked − clean on the same users (paired bootstrap CI,
  one-sided exact sign-flip p over held-out users for "attack raised exposure"; floor 2^-n);
- ``exposure.lift_ratio.<attack>.<victim>`` — attacked / clean (paired bootstrap CI; +inf when clean is 0);
- ``exposure.collateral.<attack>.<victim>`` — share of the other items in each user's clean top K
  that the attack pushed out (bootstrap CI over users);
- ``exposure.recovery.<attack>.<defense>.<victim>`` — attacked − defended (how much the defense
  took back; p for "defense lowered exposure"); ``exposure.residual_lift.<attack>.<defense>.<victim>``
  — defended − clean;
- ``exposure.defense_shift.<defense>.<victim>`` — the defense applied to the clean title, minus clean;
- ``stealth.char_edits|word_edits|similarity.<attack>``, ``attack.victim_queries|wall_s.<attack>``
  (means over targets), ``detector.flag_rate.<attack>``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from recaudit.attacks.exposure import PairedDifference, exposure, paired_difference
from recaudit.attacks.pipeline import AttackRecord, ShillingRun, TargetRun
from recaudit.metrics.multiplicity import adjust
from recaudit.metrics.power import Power, p_floor_sign_flip, power_report
from recaudit.metrics.stats import Interval, bootstrap_ci
from recaudit.results import Example, FigureSpec, GroupTable, MetricValue, Series


ALPHA = 0.05


def _mv(name: str, iv: Interval, description: str, direction: str = "neutral", p: float | None = None) -> MetricValue:
    return MetricValue(
        name=name, value=iv.value, ci_low=iv.low, ci_high=iv.high, ci_level=iv.level, n=iv.n,
        p_value=p, direction=direction, description=description,
    )


def sign_flip_power(pd: PairedDifference, alpha: float = ALPHA) -> Power:
    """The paired test's floor at this sample (2^-n over the n held-out users), and the sample it would need.

    The floor is the design's: the smallest p any effect can reach with these users. A user whose
    exposure did not change carries no evidence (it adds nothing under either sign), so a run where
    few users changed gets a large p, not a large floor; the note gives that conditional floor too.
    """
    n, m = pd.n_users, pd.n_changed
    floor = p_floor_sign_flip(n, pd.n_permutations)
    mc = pd.n_permutations is not None and 1.0 / (pd.n_permutations + 1) > alpha  # more draws, not users, would help

    def users_for(a: float) -> int | None:
        return None if mc else math.ceil(math.log2(1.0 / a) - 1e-12)  # 2^-n ≤ a

    power = power_report(floor, alpha, needed_n=users_for(alpha), needed_n_01=users_for(0.01), unit="held-out users")
    gainers = users_for(alpha)
    smallest = f"; the smallest lift that can be significant is {gainers / (n * pd.n_targets):.3g} ({gainers} users gaining one " \
        "target, none losing)" if gainers and n else ""
    where = (f"{pd.method} over {n} held-out users, floor 2^-{n}" + (f" and 1/({pd.n_permutations}+1)" if pd.n_permutations else "")
             + f"; {m} changed exposure (given these, the smallest p is {p_floor_sign_flip(m):.3g}: unchanged users carry no "
             f"evidence){smallest}")
    return Power(power.p_floor, power.mde, power.underpowered, power.needed_n, f"{where}: {power.reason}", power.needed_n_01)


def _test(name: str, pd: PairedDifference, description: str, direction: str) -> MetricValue:
    """A paired difference with its sign-flip p and power disclosure."""
    pw = sign_flip_power(pd)
    return _mv(name, pd.diff, description, direction, pd.p_value).model_copy(
        update={"p_floor": pw.p_floor, "underpowered": pw.underpowered, "needed_n": pw.needed_n, "power_note": pw.reason}
    )


def _ratio_of_means(pairs: np.ndarray) -> float:
    clean, after = pairs[:, 0].mean(), pairs[:, 1].mean()
    if clean == 0:
        return math.inf if after > 0 else math.nan
    return float(after / clean)


def lift_ratio(name: str, before: np.ndarray, after: np.ndarray, s: "ExposureSummary", description: str) -> MetricValue:
    """attacked / clean exposure with a paired bootstrap CI over users (users resampled jointly)."""
    from recaudit.attacks.exposure import per_user

    pairs = np.stack([per_user(before), per_user(after)], axis=1)
    point = _ratio_of_means(pairs)
    if not math.isfinite(point):
        return MetricValue(name=name, value=point, n=len(pairs), direction="lower_is_better", description=description,
                           null_reason="clean exposure is 0: the ratio is " + ("+inf" if point > 0 else "undefined"))
    with np.errstate(invalid="ignore"):  # resamples whose clean exposure is 0 give inf: the bound is then open
        iv = bootstrap_ci(pairs, _ratio_of_means, n_resamples=s.n_resamples, seed=s.seed)
    lo = iv.low if math.isfinite(iv.low) else None
    hi = iv.high if math.isfinite(iv.high) else None
    return MetricValue(name=name, value=point, ci_low=lo, ci_high=hi, ci_level=iv.level, n=len(pairs),
                       direction="lower_is_better", description=description)


def holm_by_family(metrics: list[MetricValue]) -> list[MetricValue]:
    """Holm-adjust p-values within each family (``exposure.lift``, ``exposure.recovery`` …: the attack×victim tests)."""
    fams: dict[str, list[int]] = {}
    for j, m in enumerate(metrics):
        if m.p_value is not None:
            fams.setdefault(".".join(m.name.split(".")[:2]), []).append(j)
    out = list(metrics)
    for fam, idx in fams.items():
        adj = adjust([metrics[j].p_value for j in idx], "holm")
        for j, a in zip(idx, adj):
            out[j] = metrics[j].model_copy(update={"p_adj": a, "p_adj_method": f"holm over {len(idx)} {fam} tests"})
    return out


def attack_variants(run: ShillingRun) -> list[tuple[int, str]]:
    """(strategy index, reported variant) of the attacks that were available."""
    first = run.targets[0].attacks
    return [(i, rec.outcome.variant) for i, rec in enumerate(first) if rec.outcome.available]


def _column(run: ShillingRun, pick: Callable[[TargetRun], np.ndarray]) -> np.ndarray:
    return np.stack([pick(t) for t in run.targets], axis=1)


class ExposureSummary:
    """Exposures and paired differences for one run, computed once and reused by every output."""

    def __init__(self, run: ShillingRun, n_resamples: int = 1000, seed: int = 0):
        self.run = run
        self.n_resamples = n_resamples
        self.seed = seed
        self.variants = attack_variants(run)

    def exp(self, hits: np.ndarray) -> Interval:
        return exposure(hits, n_resamples=self.n_resamples, seed=self.seed)

    def diff(self, before: np.ndarray, after: np.ndarray) -> PairedDifference:
        return paired_difference(before, after, n_resamples=self.n_resamples, seed=self.seed)

    def clean(self, v: str) -> np.ndarray:
        return _column(self.run, lambda t: t.clean_hits[v])

    def clean_defended(self, d: str, v: str) -> np.ndarray:
        return _column(self.run, lambda t: t.clean_defended_hits[(d, v)])

    def attacked(self, i: int, v: str) -> np.ndarray:
        return _column(self.run, lambda t: t.attacks[i].hits[v])

    def collateral(self, i: int, v: str) -> np.ndarray | None:
        """(users, targets): share of the clean top K's other items missing after attack i (None: not recorded)."""
        if any(v not in t.clean_others or v not in t.attacks[i].others for t in self.run.targets):
            return None

        def lost(t: TargetRun) -> np.ndarray:
            pairs = zip(t.clean_others[v], t.attacks[i].others[v])
            return np.array([len(c - a) / len(c) if c else 0.0 for c, a in pairs])

        return _column(self.run, lost)

    def defended(self, i: int, d: str, v: str) -> np.ndarray:
        return _column(self.run, lambda t: t.attacks[i].defended_hits[(d, v)])


def exposure_metrics(s: ExposureSummary) -> tuple[list[MetricValue], GroupTable]:
    """Exposure metrics per victim/attack/defense and the long exposure table."""
    metrics: list[MetricValue] = []
    rows: list[list] = []
    for v in s.run.victims:
        clean = s.clean(v)
        c = s.exp(clean)
        metrics.append(_mv(f"exposure.clean.{v}", c, f"share of held-out users with the clean target in the top K ({v} victim)"))
        rows.append([v, "none", "clean", c.value, c.low, c.high, 0.0, None, None, None])
        for d in s.run.defenses:
            cd = s.clean_defended(d, v)
            e, pd = s.exp(cd), s.diff(clean, cd)
            metrics.append(_mv(f"exposure.defense_shift.{d}.{v}", pd.diff, f"{d} applied to the clean title: exposure change"))
            rows.append([v, "none", f"clean+{d}", e.value, e.low, e.high, pd.diff.value, pd.diff.low, pd.diff.high, pd.p_value])
        for i, name in s.variants:
            att = s.attacked(i, v)
            e, lift = s.exp(att), s.diff(clean, att)
            metrics.append(_mv(f"exposure.attacked.{name}.{v}", e, f"exposure after the {name} attack ({v} victim)"))
            metrics.append(
                _test(f"exposure.lift.{name}.{v}", lift, f"attacked − clean exposure, paired over held-out users ({v})", "lower_is_better")
            )
            metrics.append(lift_ratio(f"exposure.lift_ratio.{name}.{v}", clean, att, s,
                                      f"attacked / clean exposure, paired bootstrap over held-out users ({v})"))
            col = s.collateral(i, v)
            if col is not None:
                metrics.append(_mv(f"exposure.collateral.{name}.{v}", s.exp(col),
                                   f"share of the other items in a held-out user's clean top K that the {name} attack "
                                   f"pushed out ({v})", "lower_is_better"))
            rows.append([v, name, "attacked", e.value, e.low, e.high, lift.diff.value, lift.diff.low, lift.diff.high, lift.p_value])
            for d in s.run.defenses:
                dh = s.defended(i, d, v)
                e = s.exp(dh)
                rec, res = s.diff(dh, att), s.diff(clean, dh)
                metrics.append(_mv(f"exposure.defended.{name}.{d}.{v}", e, f"exposure after {name} then the {d} defense ({v})"))
                metrics.append(
                    _test(f"exposure.recovery.{name}.{d}.{v}", rec, f"attacked − defended exposure: what {d} took back ({v})",
                          "higher_is_better")
                )
                metrics.append(_test(f"exposure.residual_lift.{name}.{d}.{v}", res, f"defended − clean exposure ({v})", "lower_is_better"))
                rows.append([v, name, f"defended:{d}", e.value, e.low, e.high, res.diff.value, res.diff.low, res.diff.high, res.p_value])
    table = GroupTable(
        name="exposure",
        columns=["victim", "attack", "condition", "exposure", "ci_low", "ci_high", "diff_vs_clean", "diff_ci_low", "diff_ci_high", "p_value"],
        rows=rows,
        description="Held-out exposure per condition; diff_vs_clean is paired over the same users (one-sided p for an increase).",
    )
    return holm_by_family(metrics), table


def stealth_metrics(s: ExposureSummary) -> list[MetricValue]:
    """Mean edit distance, MiniLM similarity, query cost and detector flag rate per attack (over targets)."""
    out = []
    for i, name in s.variants:
        recs = [t.attacks[i] for t in s.run.targets]
        for key, vals, desc in (
            ("stealth.char_edits", [r.char_edits for r in recs], "Levenshtein characters from the clean title"),
            ("stealth.word_edits", [r.word_edits for r in recs], "words changed from the clean title"),
            ("stealth.similarity", [r.similarity for r in recs], "MiniLM cosine to the clean title"),
            ("attack.victim_queries", [r.outcome.victim_queries for r in recs], "victim model requests of the search per target"),
            ("attack.wall_s", [r.outcome.wall_s for r in recs], "search wall time per target, seconds"),
        ):
            out.append(_mv(f"{key}.{name}", bootstrap_ci(np.asarray(vals, float), n_resamples=s.n_resamples, seed=s.seed), desc))
        flags = [r.detector.flagged for r in recs if r.detector is not None]
        if flags:
            out.append(
                _mv(f"detector.flag_rate.{name}", bootstrap_ci(np.asarray(flags, float), n_resamples=s.n_resamples, seed=s.seed),
                    "share of adversarial titles the drift detector flags", "higher_is_better")
            )
    return out


def attacks_table(run: ShillingRun) -> GroupTable:
    """One row per target × attack: titles, edits, attacker-side objective, cost."""
    rows = []
    for t in run.targets:
        for r in t.attacks:
            o = r.outcome
            cv, av = o.clean_value, o.attacked_value
            held_out = []
            for v in run.victims:
                held_out += [float(np.mean(t.clean_hits[v])), float(np.mean(r.hits[v])) if r.hits else None]
            rows.append([
                t.target, t.clean_title, o.attack, o.variant, o.available, o.adversarial_title, r.char_edits, r.word_edits,
                round(r.similarity, 4), None if cv is None else round(cv.value, 4), None if av is None else round(av.value, 4),
                None if cv is None else cv.hit_rate, None if av is None else av.hit_rate, *held_out, o.evaluations,
                o.victim_queries, t.search_setup_queries, round(o.wall_s, 2), _note(r),
            ])
    return GroupTable(
        name="attacks",
        columns=[
            "target", "clean_title", "attack", "variant", "available", "adversarial_title", "char_edits", "word_edits",
            "similarity", "attacker_utility_clean", "attacker_utility_attacked", "attacker_hit_rate_clean",
            "attacker_hit_rate_attacked",
            *[f"exposure_{c}_{v}" for v in run.victims for c in ("clean", "attacked")],
            "title_evaluations", "victim_queries", "setup_queries", "wall_s", "note",
        ],
        rows=rows,
        description=(
            "Search results on the attacker users (the held-out users are never queried during search) and this "
            "target's held-out exposure. victim_queries: the attack's own requests; setup_queries: requests shared "
            "by every attack on this target (the other candidates' scores); wall_s: search time without one-off imports."
        ),
    )


def _note(r: AttackRecord) -> str:
    parts = [r.outcome.reason] if r.outcome.reason else []
    if "kept_clean" in r.outcome.details:
        parts.append(r.outcome.details["kept_clean"])
    if "note" in r.outcome.details:
        parts.append(r.outcome.details["note"])
    return "; ".join(parts)


def examples(run: ShillingRun) -> list[Example]:
    """Clean / adversarial / defended text per target and attack (untrusted text, stored as data)."""
    out = []
    for t in run.targets:
        for r in t.attacks:
            if not r.outcome.available:
                continue
            fields = {"target": t.target, "attack": r.outcome.variant, "clean": t.clean_title, "adversarial": r.outcome.adversarial_title}
            fields.update({f"defended:{d}": title for d, title in r.defended_titles.items()})
            if r.detector is not None:
                fields["detector"] = "; ".join(r.detector.reasons) or "not flagged"
            out.append(Example(fields=fields))
    return out


def exposure_figures(s: ExposureSummary) -> list[FigureSpec]:
    """Per victim: clean, attacked and defended exposure per attack, with CIs."""
    figs = []
    names = [n for _, n in s.variants]
    for v in s.run.victims:
        c = s.exp(s.clean(v))
        series = [Series(label="clean", x=names, y=[c.value] * len(names), y_low=[c.low] * len(names), y_high=[c.high] * len(names))]
        att = [s.exp(s.attacked(i, v)) for i, _ in s.variants]
        series.append(Series(label="attacked", x=names, y=[e.value for e in att], y_low=[e.low for e in att], y_high=[e.high for e in att]))
        for d in s.run.defenses:
            de = [s.exp(s.defended(i, d, v)) for i, _ in s.variants]
            series.append(Series(label=f"defended: {d}", x=names, y=[e.value for e in de], y_low=[e.low for e in de], y_high=[e.high for e in de]))
        figs.append(
            FigureSpec(
                name=f"shilling_exposure_{v}", kind="bar", title=f"Target exposure (top-{s.run.settings.k}), {v} victim",
                x_label="attack", y_label="exposure (held-out users)", series=series,
                caption="Bars: share of held-out users with the target in the top K; whiskers: 95% bootstrap CI over users.",
            )
        )
    return figs
