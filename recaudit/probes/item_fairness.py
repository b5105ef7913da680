"""Item-side fairness (IFairLRS): does the recommender over-expose popular items and genres?

Jiang, Zhang, Bao, Wang, Feng, He, "Item-side Fairness of Large Language Model-based
Recommendation System", WWW 2024 (arXiv 2402.15215).

For sampled users, the prompt shows the user's recent liked items and asks for k items, either
freely (``mode: generate``) or from a seeded candidate set of the user's held-out positives and
sampled negatives (``mode: candidates``). The list is built as the official IFairLRS code builds it
(``list_construction: k-nearest``, ``probes.item_nearest``): the first generated title is
embedded — with the local model's own last-layer hidden state, or the MiniLM sentence encoder for
endpoints (named in each metric's ``variant``) — and the K nearest catalogue (candidate) items form
the list; nothing is dropped. recaudit's earlier construction, grounding every generated title on
its own and dropping misses, is the named variant ``ground-titles`` (it is not BIGRec's: BIGRec
and IFairLRS rank the catalogue by distance to one generated title). Items are grouped by
training popularity into ``n_buckets`` equal-size buckets (``b0`` = least popular) and by genre.
Per group g, GU(g) = share of g among recommended items − share among the reference items (the
users' histories by default); DGU = max GU − min GU, MGU = mean |GU| (``recaudit.metrics.group``,
genre shares by item–genre incidence), at K = k and at every K of ``ks`` (the paper reports
several). GU CIs are delete-one-user jackknife t-intervals, DGU/MGU percentile-bootstrap CIs over users. Tests (users as the unit): a two-sided
sign-flip test per group of GU = 0, Holm-adjusted across groups (family-wise), and one-sided tests
of DGU and MGU against the fair null (each user's recommended and history items exchangeable),
each with its exact p floor and MDE. The classical baselines (TopPop, ItemKNN, BPR-MF), fitted on
the same training split, get the same numbers.

Metric names: declared once, ``probes.item_metrics.ITEM_FAIRNESS_METRICS``; tests, metric values and
tables: ``probes.item_fairness_stats``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from recaudit.adapters.base import Request, Response
from recaudit.check_parsing import ParsesAnswersEarly, parse_answer
from recaudit.checks import Answer, AnswerMemo, CheckContext, Probe, register_check
from recaudit.probes.item_metrics import ITEM_FAIRNESS_METRICS
from recaudit.data.catalog import Catalog
from recaudit.metrics.group import GroupUnfairnessReport, group_unfairness_report, incidence_counts
from recaudit.probes.item_common import (
    GroundedAnswer, ItemProbeParams, baseline_lists, bullet_list, candidate_set, genre_membership,
    ground_answer, grounded_outcome, grounded_rate, grounding_counts, hit_rate, load_prompts, make_grounder,
    popularity_membership, safe_title, split_users, sub_catalog, training_interactions,
)
from recaudit.probes.item_fairness_stats import (
    baseline_metrics, gu_metrics, gu_table, jackknife_gu, power_fields, sign_flip_tests, summary_table,
)
from recaudit.probes.item_nearest import TitleEmbedder, first_title, llm_hidden_embedder, minilm_embedder, nearest_items
from recaudit.text.prompts import check_placeholders
from recaudit.results import CheckResult, Example, FigureSpec, GroupTable, MetricValue, Series

Grouping = Literal["popularity", "genre"]
_MAX_EXAMPLE_CHARS = 1200


class ItemFairnessParams(ItemProbeParams):
    """Settings of the item-fairness probe (defaults: generate-then-ground, 5 popularity buckets)."""

    mode: Literal["generate", "candidates"] = Field(
        "generate", description="generate = free titles grounded to the catalogue (BIGRec); candidates = pick from a set"
    )
    list_construction: Literal["k-nearest", "ground-titles"] = Field(
        "k-nearest", description="k-nearest = the official code's: embed the first generated title, take the K nearest "
        "items (nothing dropped); ground-titles = ground each generated title on its own, drop misses"
    )
    embedder: Literal["auto", "llm-hidden", "minilm"] = Field(
        "auto", description="k-nearest embedding: auto = the local model's last-layer hidden state, else MiniLM"
    )
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20], description="list lengths K for DGU/MGU (dgu@K.*)")
    n_candidates: int = Field(20, ge=2, description="candidate-set size (held-out positives + sampled negatives)")
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    n_buckets: int = Field(5, ge=2, le=20, description="equal-size popularity buckets")
    groupings: list[Grouping] = Field(default_factory=lambda: ["popularity", "genre"], min_length=1)
    reference: Literal["history", "training", "candidates"] = Field(
        "history", description="the distribution GU compares against: users' histories, all training interactions, "
        "or (candidate mode) the candidate sets"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ItemFairnessParams":
        if any(k < 1 for k in self.ks):
            raise ValueError(f"ks must be positive list lengths, got {self.ks}")
        if self.reference == "candidates" and self.mode != "candidates":
            raise ValueError("reference 'candidates' needs mode 'candidates'")
        if self.mode == "candidates" and self.k > self.n_candidates:
            raise ValueError(f"k ({self.k}) must not exceed n_candidates ({self.n_candidates})")
        return self


@register_check("item_fairness")
class ItemFairnessProbe(ParsesAnswersEarly, Probe[ItemFairnessParams]):
    """GU per popularity bucket and genre, DGU and MGU, beside classical baselines on the same users."""

    # ground-titles: ungrounded titles drop out of the group shares; k-nearest: an answer is usable when
    # its first title was embedded (its list then has K items), so the same floor is stricter per title
    min_usable = 0.7

    title = "Item-side fairness: over-exposure of popular items and genres"
    risk = "fairness"
    references = (
        "Jiang et al., Item-side Fairness of Large Language Model-based Recommendation System, WWW 2024, "
        "arXiv:2402.15215",
        "Bao et al., A Bi-Step Grounding Paradigm for Large Language Models in Recommendation Systems (BIGRec), "
        "arXiv:2308.08434",
    )
    Params = ItemFairnessParams
    params: ItemFairnessParams
    metrics = ITEM_FAIRNESS_METRICS

    # --- inputs --------------------------------------------------------------------------------

    def templates(self) -> dict[str, str]:
        """System and user templates for the configured mode, after overrides."""
        tpl = load_prompts(self.params.prompts, "item_fairness.prompts")["item_fairness"]
        mode = self.params.mode
        need = {"history", "k"} | ({"candidates"} if mode == "candidates" else set())
        check_placeholders(tpl[mode], need, f"item_fairness.prompts.item_fairness.{mode}", need | {"item_noun"})
        check_placeholders(tpl["system"], set(), "item_fairness.prompts.item_fairness.system", {"item_noun"})
        return {"system": tpl["system"], "user": tpl[mode]}

    def _prepare(self, ctx: CheckContext):
        catalog = ctx.require_catalog(self.name)
        interactions = ctx.require_interactions(self.name)
        missing = set(interactions.frame["item_id"].unique()) - set(catalog.ids)
        if missing:
            raise ValueError(f"check {self.name!r}: {len(missing)} interaction items are not in the catalogue, "
                             f"e.g. {sorted(missing)[:3]}")
        splits = split_users(interactions, self.params, self.name)
        cands = None
        if self.params.mode == "candidates":
            p = self.params
            cands = {s.user_id: candidate_set(s, catalog, p.n_candidates, p.seed, p.negative_sampling) for s in splits}
        return catalog, interactions, splits, cands

    # --- requests ------------------------------------------------------------------------------

    def requests(self, ctx: CheckContext) -> list[Request]:
        """One prompt per sampled user (history, and the candidate set in candidate mode)."""
        catalog, _, splits, cands = self._prepare(ctx)
        tpl, p = self.templates(), self.params
        system = tpl["system"].format(item_noun=p.item_noun)
        out = []
        for s in splits:
            fields = {"history": bullet_list(catalog, s.history), "k": p.k, "item_noun": p.item_noun}
            if cands is not None:
                fields["candidates"] = bullet_list(catalog, cands[s.user_id])
            out.append(Request.chat(
                tpl["user"].format(**fields), system=system,
                metadata=(("user_id", s.user_id), ("mode", p.mode)), **p.generation_settings(),
            ))
        return out

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        """Ground the lists, then GU/DGU/MGU per grouping for the model and each baseline."""
        p = self.params
        catalog, interactions, splits, cands = self._prepare(ctx)
        asked = {a.request.meta().get("user_id"): a for a in answers}
        by_user = {u: a.response for u, a in asked.items()}
        unknown = set(by_user) - {s.user_id for s in splits}
        if unknown:
            raise ValueError(f"responses for users outside the sample: {sorted(unknown)[:3]}")
        memo = self.take_answer_memo()
        nearest = p.list_construction == "k-nearest"
        if nearest:
            grounded, lists_at, embedder = self._nearest(ctx, catalog, splits, cands, by_user, memo)
        else:
            grounded = self._ground(catalog, splits, cands, by_user, memo)
            lists_at = {k: [g.items[:k] for g in grounded] for k in self._ks() if k <= p.k}
            embedder = None
        for s, g in zip(splits, grounded):
            a = asked.get(s.user_id)
            if a is not None and not a.response.error:
                if nearest:
                    # usable = a generated title that was embedded (the K-nearest list then always has K items)
                    a.mark("usable" if g.items else "unparsed", parse=g.parsed.items, grounded=g.items)
                else:
                    a.mark(grounded_outcome(g), parse=g.parsed.items, grounded=[x.item_id for x in g.groundings])
        model_lists = [g.items for g in grounded]
        variant = f"k-nearest:{embedder}" if nearest else "ground-titles"
        train = training_interactions(interactions, splits)
        base = baseline_lists(ctx, p, train, splits, cands)

        result = self.new_result()
        groupings = {
            "popularity": popularity_membership(catalog, train, p.n_buckets),
            "genre": genre_membership(catalog),
        }
        figure_rows: dict[str, dict] = {}
        for g_idx, grouping in enumerate(p.groupings):
            membership, groups = groupings[grouping]
            if not groups:
                result.notes.append(f"grouping {grouping!r} skipped: the catalogue has no such groups")
                continue
            ref = self._reference(grouping, membership, groups, splits, cands, train)
            cand_counts = None if cands is None else incidence_counts([cands[s.user_id] for s in splits], membership, groups)
            rec = incidence_counts(model_lists, membership, groups)
            if rec.sum() == 0:
                result.notes.append(f"{grouping}: no grounded recommendation belongs to any group; GU not computed")
                continue
            report = jackknife_gu(group_unfairness_report(rec, ref, groups, p.n_bootstrap, p.ci_level, p.seed + g_idx),
                                  rec, ref)
            tests = sign_flip_tests(rec, ref, p.n_permutations, p.seed + g_idx)
            gu_metrics(result, grouping, report, tests, alpha=p.alpha, reference=p.reference,
                       bootstrapped=bool(p.n_bootstrap))
            gu_table(result, grouping, report, rec, ref, cand_counts, membership, groups, tests,
                     reference=p.reference, alpha=p.alpha)
            rows = {"model": (report, tests)}
            for b_idx, (name, lists) in enumerate(base.items()):
                b_rec = incidence_counts(lists, membership, groups)
                b_seed = p.seed + 100 * (b_idx + 1) + g_idx
                b_rep = group_unfairness_report(b_rec, ref, groups, p.n_bootstrap, p.ci_level, b_seed)
                b_tests = sign_flip_tests(b_rec, ref, p.n_permutations, b_seed)
                baseline_metrics(result, name, grouping, b_rep, b_tests, p.alpha)
                rows[name] = (b_rep, b_tests)
            summary_table(result, grouping, rows, p.alpha)
            self._at_k_metrics(result, grouping, lists_at, membership, groups, ref, p.seed + g_idx, variant)
            figure_rows[grouping] = {name: rep for name, (rep, _) in rows.items()}
        self._figures(result, figure_rows)
        for m in result.metrics:
            if m.name.startswith(("gu.", "dgu.", "mgu.", "gu@", "dgu@", "mgu@")):
                m.variant = variant
        self._quality_metrics(result, grounded, model_lists, splits, base, nearest)
        result.examples = self._examples(asked, grounded, splits)
        result.notes += self._notes(splits, grounded, train)
        return result

    def _ks(self) -> list[int]:
        return sorted(set(self.params.ks) | {self.params.k})

    def embedder(self, ctx: CheckContext) -> TitleEmbedder:
        """The model's own last-layer hidden state for a local model, MiniLM for endpoints (``embedder: auto``)."""
        choice = self.params.embedder
        if choice in ("auto", "llm-hidden"):
            own = llm_hidden_embedder(ctx.adapter)
            if own is not None:
                return own
            if choice == "llm-hidden":
                raise ValueError("item_fairness: embedder 'llm-hidden' needs a local model adapter (kind hf/default); "
                                 "use embedder: minilm for endpoints")
        try:
            from recaudit.text.embed import encoder_path

            encoder_path()
        except Exception as e:
            raise ValueError(f"item_fairness: k-nearest list construction needs an embedder: {e}; "
                             "or set list_construction: ground-titles") from None
        return minilm_embedder()

    def _nearest(self, ctx, catalog: Catalog, splits, cands, by_user, memo) -> tuple[list[GroundedAnswer], dict, str]:
        """Embed each answer's first title and take the K nearest catalogue (or candidate) items, K up to max(ks)."""
        p = self.params
        emb = self.embedder(ctx)
        parsed = [parse_answer(memo, by_user.get(s.user_id, Response(text="", error="no response")), p.k) for s in splits]
        queries = [first_title(x.items) for x in parsed]
        ids = catalog.ids
        item_vecs = emb.embed([safe_title(it) for it in catalog.items])
        asked = [j for j, q in enumerate(queries) if q is not None]
        q_vecs = emb.embed([queries[j] for j in asked]) if asked else np.zeros((0, item_vecs.shape[1]))
        k_max = max(self._ks())
        lists: list[list[str]] = [[] for _ in splits]
        if cands is None:
            top = nearest_items(q_vecs, item_vecs, k_max) if asked else np.zeros((0, 0), dtype=int)
            for row, j in enumerate(asked):
                lists[j] = [ids[t] for t in top[row]]
        else:
            pos = {i: n for n, i in enumerate(ids)}
            for row, j in enumerate(asked):
                c = [pos[i] for i in cands[splits[j].user_id]]
                near = nearest_items(q_vecs[row : row + 1], item_vecs[c], k_max)[0]
                lists[j] = [ids[c[t]] for t in near]
        answers = [GroundedAnswer(x, [], lst[: p.k]) for x, lst in zip(parsed, lists)]
        return answers, {k: [lst[:k] for lst in lists] for k in self._ks()}, emb.name

    def _at_k_metrics(self, result, grouping, lists_at, membership, groups, ref, seed, variant) -> None:
        """DGU/MGU (with their tests) at every K of ``ks`` other than k (the paper reports several K)."""
        p = self.params
        for k, lists in lists_at.items():
            if k == p.k:
                continue
            rec = incidence_counts(lists, membership, groups)
            if rec.sum() == 0:
                continue
            rep = group_unfairness_report(rec, ref, groups, 0, p.ci_level, seed)
            tests = sign_flip_tests(rec, ref, p.n_permutations, seed + 1000 * k)
            for which, value in (("dgu", rep.dgu), ("mgu", rep.mgu)):
                result.metrics.append(MetricValue(
                    name=f"{which}@{k}.{grouping}", value=value, n=rep.n_users, direction="lower_is_better",
                    description=f"{which.upper()} over {grouping} groups of the top-{k} lists ({variant})",
                    **power_fields(tests, which, p.alpha),
                ))

    def _ground(self, catalog: Catalog, splits, cands, by_user: dict[str, Response], memo: AnswerMemo) -> list[GroundedAnswer]:
        p = self.params
        whole = make_grounder(catalog, p) if cands is None else None
        out = []
        for s in splits:
            resp = by_user.get(s.user_id, Response(text="", error="no response"))
            grounder = whole or make_grounder(sub_catalog(catalog, cands[s.user_id], f"candidates:{s.user_id}"), p)
            out.append(ground_answer(parse_answer(memo, resp, p.k), grounder))
        return out

    def _reference(self, grouping, membership, groups, splits, cands, train) -> np.ndarray:
        ref = self.params.reference
        if ref == "history":
            return incidence_counts([s.history for s in splits], membership, groups)
        if ref == "candidates":
            return incidence_counts([cands[s.user_id] for s in splits], membership, groups)
        return incidence_counts([train.frame["item_id"].tolist()], membership, groups)[0]

    def _figures(self, result: CheckResult, figure_rows: dict[str, dict[str, GroupUnfairnessReport]]) -> None:
        ref = self.params.reference
        if "popularity" in figure_rows:
            rows = figure_rows["popularity"]
            model = rows["model"]
            labels = [g.group for g in model.groups]
            series = [Series(label=ref, x=labels, y=[g.share_reference for g in model.groups]),
                      Series(label="recommended (model)", x=labels, y=[g.share_recommended for g in model.groups])]
            series += [Series(label=name, x=labels, y=[g.share_recommended for g in r.groups])
                       for name, r in rows.items() if name != "model"]
            result.figures.append(FigureSpec(
                name="exposure_by_popularity", kind="bar", title="Exposure share by popularity bucket",
                x_label="popularity bucket (b0 = least popular)", y_label="share of items", series=series,
                caption=f"Share of each popularity bucket among the users' {ref} items and among recommended items; "
                "bars above the reference = over-exposure.",
            ))
        if "genre" in figure_rows:
            model = figure_rows["genre"]["model"]
            result.figures.append(FigureSpec(
                name="gu_by_genre", kind="bar", title="Group unfairness (GU) per genre",
                x_label="genre", y_label="GU (recommended − reference share)",
                series=[Series(label="model", x=[g.group for g in model.groups], y=[g.gu for g in model.groups],
                               y_low=[g.ci_low for g in model.groups], y_high=[g.ci_high for g in model.groups])],
                caption="GU > 0: the genre is recommended more than it appears in the users' histories (Pos GU); "
                "< 0: overlooked (Neg GU). Whiskers: bootstrap CI over users.",
            ))

    def _quality_metrics(self, result, answers, model_lists, splits, base, nearest: bool = False) -> None:
        n = len(answers)
        if nearest:
            result.metrics.append(MetricValue(
                name="embedded_rate", value=float(np.mean([bool(a.items) for a in answers])) if answers else float("nan"),
                n=n, direction="higher_is_better", description="share of answers whose first title was embedded (K-nearest lists)",
            ))
        else:
            result.metrics.append(MetricValue(name="grounded_rate", value=grounded_rate(answers), n=n,
                                              direction="higher_is_better",
                                              description="share of parsed titles grounded to a catalogue item"))
        history_repeats = [np.mean([i in set(s.history) for i in items]) for items, s in zip(model_lists, splits) if items]
        result.metrics += [
            MetricValue(name="parse_rate", value=float(np.mean([a.parsed.ok for a in answers])), n=n,
                        direction="higher_is_better", description=f"share of answers that parsed to k={self.params.k} titles"),
            MetricValue(name="hit_rate", value=hit_rate(model_lists, splits), n=n, direction="higher_is_better",
                        description="share of users whose list holds a held-out liked item"),
            MetricValue(name="history_repeat_rate",
                        value=float(np.mean(history_repeats)) if history_repeats else float("nan"), n=n,
                        direction="lower_is_better", description="share of recommended items already in the prompt's history"),
        ]
        for name, lists in base.items():
            result.metrics.append(MetricValue(name=f"baseline.{name}.hit_rate", value=hit_rate(lists, splits), n=n,
                                              direction="higher_is_better", description=f"hit rate of the {name} baseline"))
        counts = grounding_counts(answers)
        result.tables.append(GroupTable(
            name="grounding", columns=["what", "count"], rows=[[k, v] for k, v in counts.items()],
            description="Parsed titles by grounding method and answers by parse status; ungrounded titles are dropped.",
        ))

    def _examples(self, asked, grounded, splits) -> list[Example]:
        out = []
        for s, a in list(zip(splits, grounded))[: self.params.n_examples]:
            if s.user_id not in asked:
                continue
            resp = asked[s.user_id].response
            out.append(Example(fields={
                "user_id": s.user_id, "prompt": asked[s.user_id].request.user_text[:_MAX_EXAMPLE_CHARS],
                "output": (resp.error or resp.text)[:_MAX_EXAMPLE_CHARS],
                "parsed": " | ".join(a.parsed.items),
                "grounded": " | ".join(f"{g.query} → {g.item_id or '∅'} ({g.method})" for g in a.groundings),
            }))
        return out

    def _notes(self, splits, answers, train) -> list[str]:
        p = self.params
        ungrounded = sum(1 for a in answers for g in a.groundings if g.item_id is None)
        notes = [
            f"Mode {p.mode!r}: {len(splits)} users, history = last {p.history_len} liked items (rating > "
            f"{p.liked_threshold}), {p.n_heldout} held out; k = {p.k}; reference = {p.reference}.",
            f"Popularity = interaction count in the training split ({len(train)} interactions), "
            f"{p.n_buckets} equal-size buckets by rank (b0 least popular).",
        ]
        if p.list_construction == "k-nearest":
            notes.append("Lists: the K catalogue items nearest to the embedding of each answer's first title (the official "
                         "IFairLRS construction; seen items not excluded; nothing dropped); see each metric's variant.")
        else:
            notes.append(f"{ungrounded} parsed titles could not be grounded and were dropped (see the grounding table).")
        if p.mode == "candidates":
            notes.append(f"Candidate sets: {p.n_candidates} items = held-out positives + {p.negative_sampling} negatives; "
                         "compare share_candidates with share_recommended to separate the sampler from the model.")
        if p.n_bootstrap == 0:
            notes.append("n_bootstrap = 0: CIs are degenerate (point estimates only).")
        return notes
