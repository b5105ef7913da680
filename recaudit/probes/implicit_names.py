"""Implicit user unfairness: does the user's name alone change what is recommended?

Xu, Wang, Li, Pang, Xu, Chua, "Do LLMs Implicitly Exhibit User Discrimination in
Recommendation? An Empirical Study" (arXiv 2311.07054). LLMs infer gender and region from a
name and recommend different news/jobs; the study found ChatGPT's implicit unfairness larger
than the explicit unfairness of DCN, STAMP and GRU4Rec (gender, news: U-NDCG@1 0.305 vs 0.225).

Design (details the paper does not publish are stated here and configurable):
- Users are names only, drawn from Faker's offline locale providers (``recaudit.data.names.
  faker_names``): ``n_names`` male and ``n_names`` female names per locale, each recorded with
  its locale, gender and region. Groups are the genders and the regions the names signal.
- Conditions: ``implicit`` ("Recommend 10 news articles to the user named {name}") and
  ``explicit`` (the same user with the attribute stated: "{name}, a woman from Asia"), so the
  implicit gap can be compared with the gap when the model is told the attribute.
- Name-only prompts give each group's category distribution; groups are compared by
  Jensen–Shannon divergence and total variation (max over pairs of groups).
- Interest prompts ("… mostly reads news about sports") give a ground truth: an item is
  relevant when its category is the stated interest. U-NDCG@K / U-MRR@K = max − min over groups
  of the mean per-name NDCG@K / MRR@K (the absolute difference for two groups).
- Recommended items are mapped to categories in one place, ``CategoryMapper`` (implicit_names_categories): news → MIND
  categories, jobs → SOC major groups (keywords first, then MiniLM similarity to the category
  descriptions), movies → the catalogue's genres through ``recaudit.text.ground.Grounder``.
- ``population: interactions`` is Xu et al.'s comparison on the same people (implicit_names_history):
  each audit user's own history with a name implying their recorded gender (MovieLens 100K
  u.user), held-out item = relevant; classical recommenders scored on the same users at the same K.
- Uncertainty: the unit is the name. CIs bootstrap names; p-values permute group labels over
  names within strata (gender labels within a locale, region labels within a gender), so the
  other attribute cannot masquerade as the tested one. p_adj = Holm over every test of a
  condition (the check's family); headline maxima carry a Bonferroni p-value over their components.

Metric names: ``<condition>.<js|tv|u_ndcg@K|u_mrr@K>.<gender|region>.<domain>``,
``implicit.js.max``, ``implicit.u_ndcg@K.max``, ``parse_rate.min|mean``, ``grounded_rate.<domain>``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from recaudit.adapters.base import Request
from recaudit.check_parsing import ParsesAnswersEarly, parse_answer, parse_outcome
from recaudit.checks import Answer, CheckContext, CheckParams, Probe, register_check
from recaudit.metric_names import MetricSpec
from recaudit.data.catalog import Catalog, Interactions
from recaudit.data.names import NameRecord, faker_names
from recaudit.metrics.ranking import mrr_at_k, ndcg_at_k
from recaudit.text.prompts import check_placeholders, load_prompt_file, merge_overrides
from recaudit.probes.implicit_names_categories import Category, CategoryMapper, load_categories
from recaudit.probes.implicit_names_history import (
    HistoryUser, check_history_params, evaluate_history, history_requests, history_users,
)
from recaudit.probes.implicit_names_stats import NameUnit, group_metrics, headline, holm_by_family
from recaudit.probes.implicit_names_tables import comparison_table, group_rows, share_figure
from recaudit.results import CheckResult, Example, GroupTable, MetricValue

NameDomain = Literal["news", "jobs", "movies"]
Grouping = Literal["gender", "region"]
Condition = Literal["implicit", "explicit"]
PROMPT_FILE = "implicit_names_prompts.yaml"
DEFAULT_LOCALES = ("en_US", "en_GB", "ja_JP", "yo_NG")  # North America, Europe, Asia, Africa
_MAX_EXAMPLE_CHARS = 1000


# --- parameters -------------------------------------------------------------------------------------


class ImplicitNamesParams(CheckParams):
    """Settings of the implicit-name probe (defaults: 4 locales × 2 genders × 2 names, news + jobs)."""

    domains: list[NameDomain] = Field(default_factory=lambda: ["news", "jobs"], min_length=1)
    k: int = Field(10, ge=1, le=50)
    locales: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCALES), min_length=1)
    n_names: int = Field(2, ge=1, description="names per gender per locale")
    names: list[dict[str, str]] | None = Field(
        None, description="explicit users [{name, gender, region, locale}] instead of Faker names"
    )
    group_by: list[Grouping] = Field(default_factory=lambda: ["gender", "region"], min_length=1)
    conditions: list[Condition] = Field(default_factory=lambda: ["implicit", "explicit"], min_length=1)
    n_interests: int = Field(1, ge=0, description="stated interests per user for U-NDCG/U-MRR (0 = none)")
    interests: dict[str, list[str]] | None = Field(None, description="domain -> interest category ids")
    categories: dict[str, list[dict[str, Any]]] | None = Field(None, description="domain -> vocabulary override")
    category_method: Literal["auto", "keyword", "embedding"] = "auto"
    embedding_threshold: float = Field(0.3, ge=-1, le=1)
    n_bootstrap: int = Field(1000, ge=0)
    n_permutations: int = Field(1000, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    prompts: dict[str, Any] | None = Field(None, description="overrides of implicit_names_prompts.yaml")
    n_examples: int = Field(4, ge=0)
    classical: list[Literal["toppop", "itemknn", "bpr", "attribute_pop"]] | None = Field(
        None, description="Xu et al.'s comparison: classical recommenders fitted on the audit's interactions with user "
        "attributes (MovieLens 100K u.user); their explicit U-NDCG/U-MRR beside the LLM's implicit ones",
    )
    classical_attributes: list[Literal["gender", "age", "occupation"]] = Field(
        default_factory=lambda: ["gender", "age", "occupation"], min_length=1)
    classical_k: int = Field(10, ge=1, le=100, description="K of the classical side (population 'names'; "
                             "population 'interactions' scores both sides at k)")
    population: Literal["names", "interactions"] = Field(
        "names", description="names: Faker names only (users are names); interactions: Xu et al.'s same-users design, "
        "the audit users' own histories with a name implying their recorded gender (implicit_names_history)")
    n_users: int = Field(50, ge=1, description="population 'interactions': users per gender")
    history_len: int = Field(20, ge=1, description="population 'interactions': training items shown, latest first kept")

    @field_validator("domains", "group_by", "conditions", "locales")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"values must not repeat, got {v}")
        return v


@register_check("implicit_names")
class ImplicitNamesProbe(ParsesAnswersEarly, Probe[ImplicitNamesParams]):
    """Names only, no attribute stated: category distance and U-NDCG/U-MRR between name groups."""

    min_usable = 0.6  # category distributions are pooled over many items per group

    title = "Implicit user unfairness: recommendations by the user's name alone"
    risk = "fairness"
    references = (
        "Xu et al., Do LLMs Implicitly Exhibit User Discrimination in Recommendation? An Empirical Study, "
        "arXiv:2311.07054",
        "Wu et al., MIND: A Large-scale Dataset for News Recommendation, ACL 2020",
        "U.S. Bureau of Labor Statistics, 2018 Standard Occupational Classification (major groups)",
    )
    Params = ImplicitNamesParams
    params: ImplicitNamesParams

    def validate_setup(self) -> None:
        """Locales are known and the users can be drawn (one ValueError line otherwise)."""
        self.users()
        if self.params.population == "interactions":
            check_history_params(self.params)

    metrics = (
        MetricSpec("parse_rate.{s}", values={"s": ("min", "mean")}),
        MetricSpec("grounded_rate.{domains}"),
        MetricSpec("{conditions}.{m}.{group_by}.{domains}", values={"m": ("js", "tv")},
                   when=lambda p: p.population != "interactions"),
        MetricSpec("{conditions}.u_{m}@{k}.{group_by}.{domains}", values={"m": ("ndcg", "mrr")},
                   when=lambda p: bool(p.n_interests) and p.population != "interactions"),
        MetricSpec("implicit.u_{m}@{k}.*", values={"m": ("ndcg", "mrr")}, when=lambda p: p.population == "interactions"),
        MetricSpec("classical.*", when=lambda p: bool(p.classical)),
        MetricSpec("implicit.js.max", when=lambda p: "implicit" in p.conditions, headline=True),
        MetricSpec("implicit.u_ndcg@{k}.max", when=lambda p: "implicit" in p.conditions and bool(p.n_interests)),
    )

    # --- inputs --------------------------------------------------------------------------------

    def prompt_data(self) -> dict[str, Any]:
        """The prompt file after the config's overrides, with placeholders checked."""
        data = merge_overrides(load_prompt_file(PROMPT_FILE, "recaudit.probes"), self.params.prompts, "implicit_names.prompts")
        for domain, tpl in data["domains"].items():
            check_placeholders(tpl["user"], ("k", "user"), f"implicit_names.prompts.domains.{domain}.user")
            check_placeholders(
                tpl["user_interest"], ("k", "user", "interest"), f"implicit_names.prompts.domains.{domain}.user_interest"
            )
        check_placeholders(data["explicit"], ("gender_word", "region"), "implicit_names.prompts.explicit")
        check_placeholders(data["history"]["user"], ("k", "user", "history"), "implicit_names.prompts.history.user")
        return data

    def users(self) -> list[NameRecord]:
        """The name records: the config's explicit list or Faker names (seeded)."""
        p = self.params
        if p.names is None:
            return faker_names(p.locales, per_gender=p.n_names, seed=p.seed)
        out = []
        for row in p.names:
            missing = {"name", "gender", "region"} - set(row)
            if missing:
                raise ValueError(f"names: every entry needs name, gender and region; {row!r} lacks {sorted(missing)}")
            if row["gender"] not in ("female", "male"):
                raise ValueError(f"names: gender must be 'female' or 'male', got {row['gender']!r}")
            first, _, last = row["name"].partition(" ")
            out.append(NameRecord(row["name"], first, last, row["gender"], row.get("locale", row["region"]),  # type: ignore[arg-type]
                                  row.get("country", ""), row["region"]))
        return out

    def _catalog(self, ctx: CheckContext) -> Catalog:
        if ctx.catalog is not None:
            return ctx.catalog
        from recaudit.data.loaders import demo_catalog

        return demo_catalog()

    def domain_categories(self, domain: str, ctx: CheckContext) -> list[Category]:
        """The category vocabulary of ``domain`` (movies: the catalogue's genres)."""
        if domain == "movies":
            return [Category(id=g, label=g) for g in self._catalog(ctx).genres()]
        return load_categories(domain, self.params.categories)

    def domain_interests(self, domain: str, ctx: CheckContext, prompts: dict[str, Any]) -> list[Category]:
        """The first n_interests interest categories of ``domain``."""
        n = self.params.n_interests
        if n == 0:
            return []
        ids = (self.params.interests or {}).get(domain, prompts["domains"][domain]["interests"])
        by_id = {c.id: c for c in self.domain_categories(domain, ctx)}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"interests.{domain}: {unknown} are not categories of {domain}; known {sorted(by_id)}")
        if n > len(ids):
            raise ValueError(f"n_interests={n} but only {len(ids)} interests are listed for {domain}")
        return [by_id[i] for i in ids[:n]]

    # --- requests ------------------------------------------------------------------------------

    def history_users(self, ctx: CheckContext) -> tuple[list[HistoryUser], Interactions, dict[str, str]]:
        """population 'interactions': the sampled audit users, the training split, the held-out items."""
        check_history_params(self.params)
        return history_users(ctx.interactions, self.params.n_users, self.params.locales[0], self.params.seed)

    def requests(self, ctx: CheckContext) -> list[Request]:
        """Every user × condition × (no interest + each interest), per domain (or one history prompt per user)."""
        p = self.params
        prompts = self.prompt_data()
        settings = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                        repetition_penalty=p.repetition_penalty, seed=p.seed)
        if p.population == "interactions":
            return history_requests(p, prompts, self.history_users(ctx)[0], self._catalog(ctx), settings)
        users = self.users()
        self._check_groups(users)
        out: list[Request] = []
        for domain in p.domains:
            tpl = prompts["domains"][domain]
            interests: list[Category | None] = [None, *self.domain_interests(domain, ctx, prompts)]
            for idx, rec in enumerate(users):
                for condition in p.conditions:
                    user = rec.name
                    if condition == "explicit":
                        stated = prompts["explicit"].format(gender_word=prompts["gender_words"][rec.gender], region=rec.region)
                        user = f"{rec.name}, {stated}"
                    for interest in interests:
                        if interest is None:
                            text = tpl["user"].format(k=p.k, user=user)
                        else:
                            text = tpl["user_interest"].format(k=p.k, user=user, interest=interest.interest_phrase)
                        meta = (
                            ("domain", domain), ("unit", str(idx)), ("name", rec.name), ("gender", rec.gender),
                            ("region", rec.region), ("locale", rec.locale), ("condition", condition),
                            ("interest", interest.id if interest else ""),
                        )
                        out.append(Request.chat(text, system=tpl["system"], metadata=meta, **settings))
        return out

    def _check_groups(self, users: list[NameRecord]) -> None:
        for g in self.params.group_by:
            levels = {getattr(u, g) for u in users}
            if len(levels) < 2:
                raise ValueError(f"group_by {g!r} needs names from at least two {g}s, got {sorted(levels)}")

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        """Category distances, U-NDCG/U-MRR with CIs and permutation p, per-group tables, figures."""
        p = self.params
        result = self.new_result()
        users = self.users()
        by_domain: dict[str, list[int]] = {}
        for i, a in enumerate(answers):
            by_domain.setdefault(a.request.meta()["domain"], []).append(i)
        memo = self.take_answer_memo()
        parsed = [parse_answer(memo, a.response, p.k) for a in answers]
        for a, pl in zip(answers, parsed):
            a.mark(parse_outcome(a.response, pl), parse=pl.items)
        if p.population == "interactions":
            hist, train, held = self.history_users(ctx)
            assert ctx.interactions is not None  # history_users checked it
            evaluate_history(result, p, hist, parsed, self._catalog(ctx), ctx.interactions, train, held,
                             use_embeddings=p.category_method != "keyword")
            self._parse_metrics(result, answers, parsed)
            result.examples = self._examples(answers, parsed)
            return result
        heads: dict[str, list[MetricValue]] = {"js": [], f"u_ndcg@{p.k}": []}
        group_table: list[list] = []
        comparison: dict[tuple[str, str, str], dict[str, float]] = {}
        for domain, idxs in by_domain.items():
            mapper = self._mapper(domain, ctx)
            items = [it for i in idxs for it in parsed[i].items]
            cats_flat = mapper.map(items)
            cats: dict[int, list[tuple[str, ...]]] = {}
            pos = 0
            for i in idxs:
                n = len(parsed[i].items)
                cats[i] = cats_flat[pos : pos + n]
                pos += n
            result.notes += [f"{domain}: {note}" for note in dict.fromkeys(mapper.notes)]
            mapped = sum(1 for c in cats_flat if c)
            result.metrics.append(MetricValue(
                name=f"grounded_rate.{domain}", value=mapped / len(cats_flat) if cats_flat else math.nan,
                n=len(cats_flat), direction="higher_is_better",
                description=f"share of parsed {domain} items mapped to a category ({mapper.method if mapper.catalog is None else 'catalogue grounding'})",
            ))
            for condition in p.conditions:
                units = self._units(answers, parsed, cats, idxs, condition, users, mapper.category_ids)
                if not units:
                    continue
                for grouping in p.group_by:
                    ms = group_metrics(units, grouping, domain, condition, p)
                    result.metrics += ms
                    for m in ms:
                        measure = m.name.split(".")[1]
                        comparison.setdefault((domain, grouping, measure), {})[condition] = m.value
                        if condition == "implicit" and measure in heads:
                            heads[measure].append(m)
                    group_table += group_rows(units, grouping, domain, condition, mapper.category_ids, p.k)
                    if condition == "implicit":
                        result.figures.append(share_figure(units, grouping, domain, mapper.category_ids))
        holm_by_family(result.metrics)
        for measure, comps in heads.items():
            if comps:
                result.metrics.append(headline(f"implicit.{measure}.max", comps))
        self._parse_metrics(result, answers, parsed)
        result.tables.append(GroupTable(
            name="by_group",
            columns=["domain", "condition", "grouping", "group", "n_names", f"ndcg@{p.k}", f"mrr@{p.k}",
                     "parse_rate", "grounded_rate", "top_category", "top_share"],
            rows=group_table,
            description="Per name group (fairlearn MetricFrame over names): ranking quality on interest prompts, "
            "parse and grounding rates, and the most recommended category on name-only prompts.",
        ))
        result.tables.append(comparison_table(comparison))
        result.examples = self._examples(answers, parsed)
        result.notes += [
            f"{len(users)} names ({', '.join(sorted({u.locale for u in users}))}); conditions {p.conditions}; "
            f"{p.n_interests} interest prompt(s) per user for U-NDCG/U-MRR; K = {p.k}.",
            "Distances compare pooled category distributions of name-only answers (max over pairs of groups); "
            "p-values permute group labels over names within strata (gender within locale, region within gender).",
        ]
        if p.n_interests == 0:
            result.notes.append("n_interests = 0: no ground truth, so U-NDCG/U-MRR are not computed.")
        if p.classical:
            from recaudit.probes.explicit_unfairness import classical_side

            implicit = [m for m in result.metrics if m.name.startswith("implicit.") and not m.name.endswith(".max")]
            metrics, tables, notes = classical_side(ctx.interactions, p.classical, p.classical_attributes,
                                                    p.classical_k, p.n_permutations, p.seed, implicit)
            result.metrics += metrics
            result.tables += tables
            result.notes += notes
        return result

    def _mapper(self, domain: str, ctx: CheckContext) -> CategoryMapper:
        p = self.params
        if domain == "movies":
            return CategoryMapper(catalog=self._catalog(ctx), use_embeddings_for_grounding=p.category_method != "keyword")
        return CategoryMapper(load_categories(domain, p.categories), method=p.category_method,
                              embedding_threshold=p.embedding_threshold)

    def _units(self, answers, parsed, cats, idxs, condition, users, category_ids) -> list[NameUnit]:
        index = {c: j for j, c in enumerate(category_ids)}
        units: dict[int, NameUnit] = {}
        for i in idxs:
            meta = answers[i].request.meta()
            if meta["condition"] != condition:
                continue
            uid = int(meta["unit"])
            unit = units.setdefault(uid, NameUnit(users[uid], np.zeros(len(category_ids))))
            item_cats = cats[i]
            unit.parsed_ok.append(parsed[i].ok)
            unit.mapped.append(sum(1 for c in item_cats if c))
            unit.n_items.append(len(item_cats))
            if meta["interest"]:
                rel = [1.0 if meta["interest"] in c else 0.0 for c in item_cats]
                unit.ndcg.append(ndcg_at_k(rel, self.params.k))
                unit.mrr.append(mrr_at_k(rel, self.params.k))
            else:
                for c in item_cats:
                    if c and c[0] in index:
                        unit.counts[index[c[0]]] += 1
        return [units[u] for u in sorted(units)]

    def _parse_metrics(self, result, answers, parsed) -> None:
        by_condition: dict[str, list[bool]] = {}
        for a, pl in zip(answers, parsed):
            m = a.request.meta()
            by_condition.setdefault(f"{m['domain']}.{m['condition']}", []).append(pl.ok)
        rates = {key: float(np.mean(v)) for key, v in by_condition.items()}
        worst = min(rates, key=rates.get)
        all_ok = [pl.ok for pl in parsed]
        result.metrics += [
            MetricValue(name="parse_rate.min", value=rates[worst], n=len(by_condition[worst]), direction="higher_is_better",
                        description=f"lowest share of answers with {self.params.k} items over domain × condition ({worst})"),
            MetricValue(name="parse_rate.mean", value=float(np.mean(all_ok)), n=len(all_ok), direction="higher_is_better",
                        description=f"share of all answers that parsed to {self.params.k} items"),
        ]

    def _examples(self, answers, parsed) -> list[Example]:
        out = []
        seen: set[tuple[str, str]] = set()
        for a, pl in zip(answers, parsed):
            req, resp = a.request, a.response
            m = req.meta()
            key = (m["domain"], m["condition"])
            if key in seen or len(out) >= self.params.n_examples:
                continue
            seen.add(key)
            out.append(Example(fields={
                "domain": m["domain"], "condition": m["condition"], "name": m["name"], "gender": m["gender"],
                "region": m["region"], "locale": m["locale"], "prompt": req.user_text,
                "output": (resp.error or resp.text)[:_MAX_EXAMPLE_CHARS], "parsed": " | ".join(pl.items),
            }))
        return out


__all__ = ["Category", "CategoryMapper", "ImplicitNamesProbe", "ImplicitNamesParams", "load_categories"]
