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
- Recommended items are mapped to categories in one place, ``CategoryMapper``: news → MIND
  categories, jobs → SOC major groups (keywords first, then MiniLM similarity to the category
  descriptions), movies → the catalogue's genres through ``recaudit.text.ground.Grounder``.
- Uncertainty: the unit is the name. CIs bootstrap names; p-values permute group labels over
  names within strata (gender labels within a locale, region labels within a gender), so the
  other attribute cannot masquerade as the tested one. Headline maxima carry a Bonferroni
  p-value over their components.

Metric names: ``<condition>.<js|tv|u_ndcg@K|u_mrr@K>.<gender|region>.<domain>``,
``implicit.js.max``, ``implicit.u_ndcg@K.max``, ``parse_rate.min|mean``, ``grounded_rate.<domain>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, field_validator

from recaudit.adapters.base import Request, Response
from recaudit.checks import CheckContext, CheckParams, Probe, register_check
from recaudit.metric_names import MetricSpec
from recaudit.data.catalog import Catalog
from recaudit.data.names import NameRecord, faker_names
from recaudit.metrics.distribution import group_gap, max_pairwise_distance, mrr_at_k, ndcg_at_k
from recaudit.probes._parse_early import ParsesAnswersEarly, parse_answer, parse_outcome
from recaudit.text.prompts import check_placeholders, load_prompt_file, merge_overrides
from recaudit.probes._group_stats import batched_group_distance, batched_group_gap
from recaudit.metrics.multiplicity import adjust as holm
from recaudit.metrics.power import TARGET_FLOOR, disclose, stratified_floor
from recaudit.metrics.resampling import pvalue, stratified_permutations
from recaudit.probes._uncertainty import bootstrap_or_point
from recaudit.results import CheckResult, Example, FigureSpec, GroupTable, MetricValue, Series
from recaudit.text.parse import normalize_title

NameDomain = Literal["news", "jobs", "movies"]
Grouping = Literal["gender", "region"]
Condition = Literal["implicit", "explicit"]
PROMPT_FILE = "implicit_names_prompts.yaml"
CATEGORY_FILE = "implicit_names_categories.yaml"
DEFAULT_LOCALES = ("en_US", "en_GB", "ja_JP", "yo_NG")  # North America, Europe, Asia, Africa
_STRATUM = {"gender": "locale", "region": "gender"}  # permute labels within this attribute
_MAX_EXAMPLE_CHARS = 1000


# --- categories: the one place items become categories ---------------------------------------------


@dataclass(frozen=True)
class Category:
    """One category of a vocabulary (MIND news category, SOC job family, or a catalogue genre)."""

    id: str
    label: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    interest: str = ""

    @property
    def interest_phrase(self) -> str:
        """How a prompt states an interest in this category."""
        return self.interest or self.label.lower()


def load_categories(domain: str, overrides: dict[str, list[dict[str, Any]]] | None = None) -> list[Category]:
    """The shipped vocabulary of ``domain`` (news, jobs), or the config's replacement list."""
    source = (overrides or {}).get(domain)
    if source is None:
        data = load_prompt_file(CATEGORY_FILE, "recaudit.probes")
        if domain not in data:
            raise ValueError(f"no shipped category vocabulary for domain {domain!r}; pass `categories`")
        source = data[domain]
    out = []
    for row in source:
        if "id" not in row:
            raise ValueError(f"categories.{domain}: every category needs an 'id', got {row!r}")
        out.append(Category(
            id=str(row["id"]), label=str(row.get("label", row["id"])), description=str(row.get("description", "")),
            keywords=tuple(str(k) for k in row.get("keywords", ())), interest=str(row.get("interest", "")),
        ))
    if len({c.id for c in out}) != len(out):
        raise ValueError(f"categories.{domain}: ids must be unique")
    return out


class CategoryMapper:
    """Maps recommended item texts of one domain to category ids (a tuple per item, empty = unmapped).

    ``method``: "keyword" (whole-word keyword/phrase hits in the normalised text; the category
    with the most matched words wins, ties to the vocabulary order), "embedding" (cosine of
    all-MiniLM-L6-v2 embeddings of the item and "label: description", accepted at
    ``embedding_threshold``), "auto" (keywords, then embeddings for the rest when the encoder
    is installed). With a catalogue (movies) items are grounded to catalogue items and map to
    all of the item's genres (first genre first).
    """

    def __init__(
        self,
        categories: Sequence[Category] = (),
        catalog: Catalog | None = None,
        method: Literal["auto", "keyword", "embedding"] = "auto",
        embedding_threshold: float = 0.3,
        use_embeddings_for_grounding: bool = True,
    ):
        if catalog is None and not categories:
            raise ValueError("CategoryMapper needs categories or a catalogue")
        self.catalog = catalog
        self.method = method
        self.embedding_threshold = embedding_threshold
        self.embeddings_used = False
        self.notes: list[str] = []
        if catalog is not None:
            from recaudit.text.ground import Grounder

            self.categories = [Category(id=g, label=g) for g in catalog.genres()]
            self._grounder = Grounder(catalog, use_embeddings=use_embeddings_for_grounding)
        else:
            self.categories = list(categories)
            self._keywords = [
                (j, f" {normalize_title(kw)} ", len(normalize_title(kw).split()))
                for j, c in enumerate(self.categories) for kw in c.keywords if normalize_title(kw)
            ]
        self._category_vectors: np.ndarray | None = None

    @property
    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def map(self, items: Sequence[str]) -> list[tuple[str, ...]]:
        """Categories of each item, aligned with ``items``."""
        if self.catalog is not None:
            return [
                tuple(self.catalog.get(g.item_id).genres) if g.item_id is not None else ()
                for g in self._grounder.ground(list(items))
            ]
        out: list[tuple[str, ...]] = [()] * len(items)
        if self.method in ("auto", "keyword"):
            out = [self._by_keyword(it) for it in items]
        if self.method in ("auto", "embedding"):
            rest = [i for i, cats in enumerate(out) if not cats]
            if rest:
                for i, cats in zip(rest, self._by_embedding([items[i] for i in rest])):
                    out[i] = cats
        return out

    def _by_keyword(self, item: str) -> tuple[str, ...]:
        text = f" {normalize_title(item)} "
        scores = np.zeros(len(self.categories))
        for j, kw, n_words in self._keywords:
            if kw in text:
                scores[j] += n_words
        return (self.categories[int(scores.argmax())].id,) if scores.max() > 0 else ()

    def _by_embedding(self, items: list[str]) -> list[tuple[str, ...]]:
        from recaudit.text.embed import EmbeddingModelMissing, embed

        try:
            if self._category_vectors is None:
                self._category_vectors = embed([f"{c.label}: {c.description}" for c in self.categories])
            sims = embed(items) @ self._category_vectors.T
        except EmbeddingModelMissing as e:
            if self.method == "embedding":
                raise
            self.notes.append(f"embedding matcher unavailable ({e}); keyword matches only")
            return [()] * len(items)
        self.embeddings_used = True
        best = sims.argmax(axis=1)
        return [
            (self.categories[b].id,) if sims[r, b] >= self.embedding_threshold else ()
            for r, b in enumerate(best)
        ]


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
    classical_k: int = Field(10, ge=1, le=100)

    @field_validator("domains", "group_by", "conditions", "locales")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"values must not repeat, got {v}")
        return v


@dataclass
class _Unit:
    """One user (name) of one domain and condition, with everything evaluate() needs."""

    record: NameRecord
    counts: np.ndarray  # categories of the name-only answers
    ndcg: list[float]
    mrr: list[float]
    parsed_ok: list[bool]
    mapped: list[int]  # per answer: items with a category
    n_items: list[int]


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

    metrics = (
        MetricSpec("parse_rate.{s}", values={"s": ("min", "mean")}),
        MetricSpec("grounded_rate.{domains}"),
        MetricSpec("{conditions}.{m}.{group_by}.{domains}", values={"m": ("js", "tv")}),
        MetricSpec("{conditions}.u_{m}@{k}.{group_by}.{domains}", values={"m": ("ndcg", "mrr")},
                   when=lambda p: bool(p.n_interests)),
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

    def requests(self, ctx: CheckContext) -> list[Request]:
        """Every user × condition × (no interest + each interest), per domain."""
        p = self.params
        prompts = self.prompt_data()
        users = self.users()
        self._check_groups(users)
        settings = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                        repetition_penalty=p.repetition_penalty, seed=p.seed)
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

    def evaluate(self, ctx: CheckContext, requests: list[Request], responses: list[Response]) -> CheckResult:
        """Category distances, U-NDCG/U-MRR with CIs and permutation p, per-group tables, figures."""
        if len(requests) != len(responses):
            raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
        p = self.params
        result = self.new_result()
        users = self.users()
        by_domain: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            by_domain.setdefault(req.meta()["domain"], []).append(i)
        memo = self.take_answer_memo()
        parsed = [parse_answer(memo, r, p.k) for r in responses]
        for i, (resp, pl) in enumerate(zip(responses, parsed)):
            self.mark(ctx, i, parse_outcome(resp, pl), parse=pl.items)
        headline: dict[str, list[MetricValue]] = {"js": [], f"u_ndcg@{p.k}": []}
        group_rows: list[list] = []
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
                units = self._units(requests, parsed, cats, idxs, condition, users, mapper.category_ids)
                if not units:
                    continue
                for grouping in p.group_by:
                    ms = self._group_metrics(units, grouping, domain, condition, mapper.category_ids)
                    result.metrics += ms
                    for m in ms:
                        measure = m.name.split(".")[1]
                        comparison.setdefault((domain, grouping, measure), {})[condition] = m.value
                        if condition == "implicit" and measure in headline:
                            headline[measure].append(m)
                    group_rows += self._group_rows(units, grouping, domain, condition, mapper.category_ids)
                    if condition == "implicit":
                        result.figures.append(self._share_figure(units, grouping, domain, mapper.category_ids))
        _holm_by_family(result.metrics)
        for measure, comps in headline.items():
            if comps:
                result.metrics.append(_headline(f"implicit.{measure}.max", comps))
        self._parse_metrics(result, requests, parsed)
        result.tables.append(GroupTable(
            name="by_group",
            columns=["domain", "condition", "grouping", "group", "n_names", f"ndcg@{p.k}", f"mrr@{p.k}",
                     "parse_rate", "grounded_rate", "top_category", "top_share"],
            rows=group_rows,
            description="Per name group (fairlearn MetricFrame over names): ranking quality on interest prompts, "
            "parse and grounding rates, and the most recommended category on name-only prompts.",
        ))
        result.tables.append(_comparison_table(comparison))
        result.examples = self._examples(requests, responses, parsed)
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

    def _units(self, requests, parsed, cats, idxs, condition, users, category_ids) -> list[_Unit]:
        index = {c: j for j, c in enumerate(category_ids)}
        units: dict[int, _Unit] = {}
        for i in idxs:
            meta = requests[i].meta()
            if meta["condition"] != condition:
                continue
            uid = int(meta["unit"])
            unit = units.setdefault(uid, _Unit(users[uid], np.zeros(len(category_ids)), [], [], [], [], []))
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

    def _group_metrics(self, units, grouping, domain, condition, category_ids) -> list[MetricValue]:
        p = self.params
        labels = np.array([getattr(u.record, grouping) for u in units])
        strata = np.array([getattr(u.record, _STRATUM[grouping]) for u in units])
        codes = np.unique(labels, return_inverse=True)[1]
        n_groups = int(codes.max()) + 1
        counts = np.stack([u.counts for u in units])
        seed = p.seed + _hash_seed(domain, condition, grouping)
        # one set of within-stratum permutations serves every statistic of this grouping
        perms = codes[stratified_permutations(strata, p.n_permutations, np.random.default_rng(seed))] \
            if p.n_permutations else None
        floor = stratified_floor(codes, strata)
        needed = _needed_names(codes, strata, self.params.n_names, TARGET_FLOOR)
        out: list[MetricValue] = []

        def tested(observed: float, null: np.ndarray | None) -> dict:
            if null is None:
                return {}
            return dict(p_value=pvalue(observed, null),
                        **disclose(floor, p.n_permutations, null, "names per gender per locale", needed).fields())

        for dist in ("js", "tv"):
            value = _group_distance(counts, codes, dist)
            what = (f"{'Jensen–Shannon divergence' if dist == 'js' else 'total variation'} between the "
                    f"{grouping} groups' {domain} category distributions (max over pairs), {condition} condition")
            if not math.isfinite(value):  # a group with no categorised item: no distribution to compare
                out.append(MetricValue(name=f"{condition}.{dist}.{grouping}.{domain}", value=math.nan, n=len(units),
                                       direction="lower_is_better", variant=condition,
                                       description=f"{what}; undefined: a group has no categorised item"))
                continue
            ci = bootstrap_or_point(
                np.column_stack([codes, counts]),
                lambda rows, d=dist: _group_distance(rows[:, 1:], rows[:, 0].astype(int), d),
                p.n_bootstrap, p.ci_level, seed,
            )
            null = batched_group_distance(counts, perms, n_groups, dist) if perms is not None else None
            out.append(MetricValue(
                name=f"{condition}.{dist}.{grouping}.{domain}", value=value, ci_low=ci.low, ci_high=ci.high,
                ci_level=p.ci_level, ci_method="bootstrap-percentile" if ci.low is not None else None,
                ci_unreliable=True, n=len(units), direction="lower_is_better", variant=condition,
                description=what + "; a pooled distance is biased upward in small samples, so its interval is "
                "flagged unreliable: read the p-value", **tested(value, null),
            ))
        if p.n_interests > 0:
            for measure, per_unit in ((f"u_ndcg@{p.k}", [np.mean(u.ndcg) for u in units]),
                                      (f"u_mrr@{p.k}", [np.mean(u.mrr) for u in units])):
                vals = np.asarray(per_unit, dtype=float)
                ci = bootstrap_or_point(np.column_stack([codes, vals]), lambda rows: group_gap(rows[:, 1], rows[:, 0]),
                                        p.n_bootstrap, p.ci_level, seed)
                value = group_gap(vals, codes)
                null = batched_group_gap(vals, perms, n_groups) if perms is not None else None
                out.append(MetricValue(
                    name=f"{condition}.{measure}.{grouping}.{domain}", value=value, ci_low=ci.low,
                    ci_high=ci.high, ci_level=p.ci_level, ci_method="bootstrap-percentile" if ci.low is not None else None,
                    ci_unreliable=True, n=len(units), direction="lower_is_better", variant=condition,
                    description=f"max − min over {grouping} groups of mean {measure.split('@')[0][2:].upper()}@{p.k} "
                    f"(relevant = the stated interest's category), {condition} condition; the bootstrap interval of a "
                    "gap is not validated by simulation (flagged unreliable): read the p-value", **tested(value, null),
                ))
        return out

    def _group_rows(self, units, grouping, domain, condition, category_ids) -> list[list]:
        from fairlearn.metrics import MetricFrame

        k = self.params.k
        per_unit = {
            f"ndcg@{k}": np.array([np.mean(u.ndcg) if u.ndcg else np.nan for u in units]),
            f"mrr@{k}": np.array([np.mean(u.mrr) if u.mrr else np.nan for u in units]),
            "parse_rate": np.array([np.mean(u.parsed_ok) for u in units]),
            "grounded_rate": np.array([sum(u.mapped) / max(sum(u.n_items), 1) for u in units]),
        }
        # MetricFrame slices row indices by group; each metric averages its per-name column
        metrics = {name: (lambda idx, _pred, col=col: _nanmean(col[idx])) for name, col in per_unit.items()}
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

    def _share_figure(self, units, grouping, domain, category_ids) -> FigureSpec:
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

    def _parse_metrics(self, result, requests, parsed) -> None:
        by_condition: dict[str, list[bool]] = {}
        for req, pl in zip(requests, parsed):
            m = req.meta()
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

    def _examples(self, requests, responses, parsed) -> list[Example]:
        out = []
        seen: set[tuple[str, str]] = set()
        for req, resp, pl in zip(requests, responses, parsed):
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


# --- helpers (pure) --------------------------------------------------------------------------------


def _hash_seed(*parts: str) -> int:
    """A small stable integer from strings (process-independent, unlike hash())."""
    import zlib

    return zlib.crc32("|".join(parts).encode()) % 100_000


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _group_distance(counts: np.ndarray, labels: np.ndarray, distance: str) -> float:
    """Max pairwise distance between the pooled category distributions of the label groups."""
    labels = np.asarray(labels).astype(int)
    groups = np.unique(labels)
    if len(groups) < 2:
        return math.nan
    totals = {g: counts[labels == g].sum(axis=0) for g in groups}
    if any(t.sum() <= 0 for t in totals.values()):
        return math.nan
    return max_pairwise_distance(totals, distance)[0]


def _needed_names(codes: np.ndarray, strata: np.ndarray, n_names: int, target: float) -> int | None:
    """Smallest names-per-gender-per-locale whose exact floor is ≤ target, with the same strata and groups."""
    levels = np.unique(strata)
    groups = np.unique(codes)
    per = {s: sorted({int(c) for c in codes[strata == s]}) for s in levels}
    for n in range(1, 65):
        # every stratum holds each of its groups n times (names are drawn n per gender per locale)
        lab = np.concatenate([np.repeat(per[s], n) for s in levels])
        st = np.concatenate([np.repeat(s, n * len(per[s])) for s in levels])
        if len(groups) and stratified_floor(lab, st) <= target:
            return n
    return None


def _holm_by_family(metrics: list[MetricValue]) -> None:
    """p_adj: Holm over the tests of one condition and measure (every grouping × domain)."""
    families: dict[tuple[str, str], list[MetricValue]] = {}
    for m in metrics:
        if m.p_value is not None:
            condition, measure = m.name.split(".")[:2]
            families.setdefault((condition, measure), []).append(m)
    for (condition, measure), members in families.items():
        for m, adj in zip(members, holm([m.p_value for m in members])):
            m.p_adj, m.p_adj_method = adj, f"holm over {len(members)} tests ({condition}.{measure}.*)"


def _headline(name: str, components: list[MetricValue]) -> MetricValue:
    finite = [m for m in components if math.isfinite(m.value)]
    if not finite:
        return MetricValue(name=name, value=math.nan, direction="lower_is_better", variant="implicit")
    worst = max(finite, key=lambda m: m.value)
    tested = [m for m in finite if m.p_value is not None]
    ps = [m.p_value for m in tested]
    p_adj = min(1.0, min(ps) * len(ps)) if ps else None  # = the smallest Holm-adjusted component p
    power: dict = {}
    if tested:
        floors = [m.p_floor for m in tested if m.p_floor is not None]
        floor = min(1.0, min(floors) * len(tested)) if floors else None
        needs = [m.needed_n for m in tested if m.needed_n is not None]
        weak = floor is not None and floor > 0.05
        power = dict(p_floor=floor, underpowered=weak, needed_n=min(needs) if needs and (weak or floor > TARGET_FLOOR) else None,
                     mde=worst.mde, power_note=f"Bonferroni over {len(tested)} components: floor {floor:.3g}"
                     + (f" (underpowered; needs {min(needs)} names per gender per locale)" if weak and needs else "")
                     if floor is not None else "")
    return MetricValue(
        name=name, value=worst.value, ci_low=worst.ci_low, ci_high=worst.ci_high, ci_level=worst.ci_level,
        ci_method=worst.ci_method, ci_unreliable=worst.ci_unreliable,
        p_value=p_adj, n=worst.n, direction="lower_is_better", variant="implicit",
        description=f"largest of {len(finite)} components (attained by {worst.name}); p = Bonferroni-adjusted "
        "smallest component p (any group gap at all)", **power,
    )


def _comparison_table(comparison: dict[tuple[str, str, str], dict[str, float]]) -> GroupTable:
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


__all__ = ["Category", "CategoryMapper", "ImplicitNamesProbe", "ImplicitNamesParams", "load_categories"]
