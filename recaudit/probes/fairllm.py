"""FaiRLLM: does the list change when the user states a sensitive attribute?

Zhang, Bao, Zhang, Wang, Feng, He, "Is ChatGPT Fair for Recommendation? Evaluating Fairness in
Large Language Model Recommendation", RecSys 2023 (arXiv 2305.07609).

For every name m of a famous artist (music) or director (movie), the user says "I am {value} fan
of {name}" once with the neutral value "a" and once with each sensitive value (8 attributes, 31
values; the typo set is optional). Each sensitive list R^a_m is compared with the neutral list
R_m by Jaccard@K, SERP*@K and PRAG*@K (``recaudit.metrics.list_similarity``, in the variant chosen by
``variant``: "fairllm-notebook" by default, the official notebook's code behind every published
table; "paper" for the formulas as printed, on another scale (PRAG*@20 at most 0.45, always 0 at
K=1); "langfair" for LangFair's). Every number carries its variant (MetricValue.variant). Sim(a)@K is the mean over instructions m; per attribute,
SNSR@K = max_a Sim(a) − min_a Sim(a) and SNSV@K = the population std of Sim(a).

Beyond the paper: Student-t CIs over instructions for every Sim(a) (simulated coverage 93–97%
from 10 instructions; ``ci_unreliable`` below), basic-bootstrap CIs for SNSR and SNSV (always
``ci_unreliable``: a range is biased near 0), and a paired permutation test for "SNSR > chance": within each instruction the value labels of
one attribute are shuffled (the neutral list is shared, so under "the value does not matter"
the labels are exchangeable within an instruction). The headline ``snsr.<metric>@K.max`` takes
the largest SNSR over attributes, and its p-value comes from shuffling all attributes jointly
(so it accounts for taking the maximum). A range cannot be negative, so SNSR's CI never covers
values below 0: read the p-value, not the CI, for "is there any effect". Per metric, the attribute
p-values are Holm-adjusted (``p_adj``); every test carries ``p_floor`` (exact: V^(1−n) for V values
over n instructions), an MDE and ``underpowered``/``needed_n`` (``recaudit.metrics.power``).

Metric names: ``sim.<metric>@K.<attribute>.<value>``, ``snsr|snsv.<metric>@K.<attribute>``,
``snsr.<metric>@K.max``, ``parse_rate.min|mean|neutral``; with several domains the same per
attribute are reported per domain with a ``.<domain>`` suffix (the unsuffixed ones pool the
instructions of all domains). The statistics (CIs, tests, Holm, headline) are in ``fairllm_stats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from recaudit.adapters.base import Request, Response
from recaudit.checks import Answer, CheckContext, CheckParams, Probe, register_check
from recaudit.metric_names import MetricSpec
from recaudit.data.names import fairllm_default_names, load_fairllm_names, load_sensitive_attributes
from recaudit.metrics.list_similarity import LIST_METRICS, ListMetric, Variant, snsr
from recaudit.metrics.list_similarity_notebook import similarity_tensors
from recaudit.probes.fairllm_stats import attribute_metrics, headline_metrics, parse_rate
from recaudit.text.prompts import check_placeholders, load_prompt_file, merge_overrides
from recaudit.results import CheckResult, Example, FigureSpec, GroupTable, MetricValue, Series
from recaudit.text.parse import fairllm_match_key, normalize_title, parse_list

Domain = Literal["music", "movie"]
DOMAINS: tuple[str, ...] = ("music", "movie")
PUBLISHED_ATTRIBUTES: tuple[str, ...] = (
    "age", "country", "gender", "continent", "occupation", "race", "religion", "physics",
)
NEUTRAL = "neutral"
BENCHMARK_NAMES = 500  # the paper uses the first 500 names of each list
PROMPT_FILE = "fairllm_prompts.yaml"
_MAX_EXAMPLE_CHARS = 1200


class FairLLMParams(CheckParams):
    """Settings of the FaiRLLM probe (defaults: the paper's prompts and K, a CPU-sized sample)."""

    domains: list[Domain] = Field(default_factory=lambda: ["music", "movie"], min_length=1)
    k: int = Field(20, ge=1, le=100, description="list length asked for and the largest cutoff K")
    n_names: int | None = Field(
        5, ge=1, description="names per domain (the first n; None = the benchmark's 500 or all shipped names)"
    )
    n_values: int | None = Field(None, ge=2, description="values sampled per attribute (None = all)")
    attributes: list[str] | None = Field(None, description="attribute subset (None = the 8 published ones)")
    include_typo: bool = Field(False, description="add the benchmark's typo set as an attribute")
    names: dict[str, list[str]] | None = Field(
        None, description="explicit names per domain (overrides names_paths and the shipped sample)"
    )
    names_paths: dict[str, str] = Field(
        default_factory=dict, description="domain -> the benchmark's name file (mtv-music-artists.csv, director.csv)"
    )
    attributes_path: str | None = Field(None, description="the benchmark's sst_json.json (None = the shipped copy)")
    variant: Variant = Field(
        "fairllm-notebook",
        description="fairllm-notebook = the official code behind the published tables (default); paper = the printed formulas",
    )
    metrics: list[ListMetric] = Field(default_factory=lambda: list(LIST_METRICS), min_length=1)
    figure_metric: ListMetric = "prag"
    parse_mode: Literal["auto", "robust", "fairllm-notebook"] = Field(
        "auto", description="auto = the notebook's parser for variant fairllm-notebook, else the robust one"
    )
    n_bootstrap: int = Field(1000, ge=0)
    n_permutations: int = Field(1000, ge=0)
    ci_level: float = Field(0.95, gt=0, lt=1)
    snsr_ci_method: Literal["percentile", "basic"] = Field(
        "basic", description="bootstrap interval of SNSR/SNSV (flagged unreliable either way: a range is biased near 0)"
    )
    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    prompts: dict[str, dict[str, str]] | None = Field(None, description="overrides of fairllm_prompts.yaml domains")
    neutral_value: str | None = Field(None, description="override of the neutral value (the attribute file's 'a')")
    n_examples: int = Field(4, ge=0)

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"metrics must not repeat, got {v}")
        return v

    @model_validator(mode="after")
    def _figure_metric_is_computed(self) -> "FairLLMParams":
        if self.figure_metric not in self.metrics:
            raise ValueError(f"figure_metric {self.figure_metric!r} must be one of metrics {self.metrics}")
        return self


@dataclass(frozen=True)
class _Parsed:
    keys: list[str]
    items: list[str]
    ok: bool


@register_check("fairllm")
class FairLLMProbe(Probe[FairLLMParams]):
    """User-side fairness with the attribute stated: FaiRLLM's Sim/SNSR/SNSV with CIs and permutation tests."""

    min_usable = 0.9  # Sim/SNSR compare whole top-K lists: a missing list biases them

    title = "FaiRLLM: recommendations when users state a sensitive attribute"
    risk = "fairness"
    references = (
        "Zhang et al., Is ChatGPT Fair for Recommendation? Evaluating Fairness in Large Language Model "
        "Recommendation, RecSys 2023, arXiv:2305.07609",
        "https://github.com/jizhi-zhang/FaiRLLM",
    )
    Params = FairLLMParams
    params: FairLLMParams

    metrics = (
        MetricSpec("parse_rate.{s}", values={"s": ("min", "mean", "neutral")}),
        MetricSpec("snsr.{metrics}@{k}.max", headline=True),
        MetricSpec("{m}.{metrics}@{k}.*", values={"m": ("sim", "snsr", "snsv")}),
    )

    # --- inputs --------------------------------------------------------------------------------

    def validate_setup(self) -> None:
        """Attributes, name files and prompt templates resolve (one ValueError line otherwise)."""
        self.attribute_values()
        self.prompt_templates()
        for domain in self.params.domains:
            if not self.domain_names(domain):
                raise ValueError(f"names for domain {domain!r}: none found")

    def prompt_templates(self) -> dict[str, dict[str, str]]:
        """Per-domain system and user templates after the config's overrides."""
        data = load_prompt_file(PROMPT_FILE, "recaudit.probes")
        domains = merge_overrides(data["domains"], self.params.prompts, "fairllm.prompts")
        for domain, tpl in domains.items():
            check_placeholders(tpl["user"], ("value", "name", "k"), f"fairllm.prompts.{domain}.user")
        return domains

    def neutral_value(self) -> str:
        """The value of the attribute-free prompt ("a", as the official code sends)."""
        if self.params.neutral_value is not None:
            return self.params.neutral_value
        return load_sensitive_attributes(self.params.attributes_path).neutral

    def attribute_values(self) -> dict[str, list[str]]:
        """Attribute -> the values asked (published order; a seeded sample when n_values is set)."""
        table = load_sensitive_attributes(self.params.attributes_path)
        available = {**table.attributes, "typo": table.typo}
        wanted = list(self.params.attributes or PUBLISHED_ATTRIBUTES)
        if self.params.include_typo and "typo" not in wanted:
            wanted.append("typo")
        unknown = [a for a in wanted if a not in available]
        if unknown:
            raise ValueError(f"attributes: unknown {unknown}; the attribute file has {sorted(available)}")
        rng = np.random.default_rng(self.params.seed)
        out: dict[str, list[str]] = {}
        for attr in wanted:
            values = [v for v in dict.fromkeys(available[attr]) if v.strip()]
            if len(values) < 2:
                raise ValueError(f"attribute {attr!r} needs at least two values, has {values}")
            n = self.params.n_values
            if n is not None and n < len(values):
                keep = set(rng.choice(len(values), size=n, replace=False).tolist())
                values = [v for i, v in enumerate(values) if i in keep]
            out[attr] = values
        return out

    def domain_names(self, domain: str) -> list[str]:
        """The first n_names names of the domain's list (explicit names, the benchmark's file or the shipped 30)."""
        n = self.params.n_names
        if self.params.names and domain in self.params.names:
            return list(self.params.names[domain][:n])
        path = self.params.names_paths.get(domain)
        if path is None:
            return fairllm_default_names(domain, n)
        return load_fairllm_names(path, domain, BENCHMARK_NAMES if n is None else n)

    # --- requests ------------------------------------------------------------------------------

    def requests(self, ctx: CheckContext) -> list[Request]:
        """Neutral + one prompt per sensitive value, for every name of every domain."""
        unknown = set(self.params.names_paths) - set(DOMAINS)
        if unknown:
            raise ValueError(f"names_paths: unknown domains {sorted(unknown)}; known {list(DOMAINS)}")
        templates = self.prompt_templates()
        attributes = self.attribute_values()
        neutral = self.neutral_value()
        p = self.params
        settings = dict(
            max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
            repetition_penalty=p.repetition_penalty, seed=p.seed,
        )
        out: list[Request] = []
        for domain in p.domains:
            tpl = templates[domain]
            for idx, name in enumerate(self.domain_names(domain)):
                cells = [(NEUTRAL, neutral)] + [(a, v) for a, values in attributes.items() for v in values]
                for attr, value in cells:
                    user = tpl["user"].format(value=value, name=name, k=p.k)
                    meta = (
                        ("domain", domain), ("instruction", f"{domain}:{idx}"), ("name", name),
                        ("attribute", attr), ("value", value),
                    )
                    out.append(Request.chat(user, system=tpl["system"], metadata=meta, **settings))
        return out

    # --- evaluation ----------------------------------------------------------------------------

    def _parse_mode(self) -> str:
        if self.params.parse_mode != "auto":
            return self.params.parse_mode
        return "fairllm-notebook" if self.params.variant == "fairllm-notebook" else "robust"

    def _parse(self, response: Response) -> _Parsed:
        if response.error:
            return _Parsed([], [], False)
        mode = self._parse_mode()
        parsed = parse_list(response.text, self.params.k, mode=mode)
        key = fairllm_match_key if mode == "fairllm-notebook" else normalize_title
        return _Parsed([key(it) for it in parsed.items], list(parsed.items), parsed.ok)

    def prepare(self, ctx: CheckContext, request: Request, response: Response) -> None:
        """Parse each answer as it arrives (while the model writes the others); evaluate takes it from here."""
        if not response.error:
            self.answer_memo().get(response.text, lambda: self._parse(response))

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        """Sim(a)@1..K per value, SNSR/SNSV per attribute, CIs, permutation p-values, parse rates."""
        memo = self.take_answer_memo()
        p = self.params
        cells: dict[tuple[str, str, str], _Parsed] = {}  # (instruction, attribute, value)
        raw: dict[tuple[str, str, str], Answer] = {}
        attrs: dict[str, list[str]] = {}
        for a in answers:
            m, resp = a.request.meta(), a.response
            cell = (m["instruction"], m["attribute"], m["value"])
            cells[cell] = self._parse(resp) if resp.error else memo.get(resp.text, lambda r=resp: self._parse(r))
            if not resp.error:  # usable evidence: the full top-K list the similarity metrics compare
                a.mark("usable" if cells[cell].ok else "unparsed", parse=cells[cell].items)
            raw[cell] = a
            if m["attribute"] != NEUTRAL:
                attrs.setdefault(m["attribute"], [])
                if m["value"] not in attrs[m["attribute"]]:
                    attrs[m["attribute"]].append(m["value"])
        neutral_of = {i: parsed for (i, a, _), parsed in cells.items() if a == NEUTRAL}
        if not neutral_of or not attrs:
            raise ValueError("fairllm: no neutral/sensitive response pairs to evaluate")
        instructions = sorted(neutral_of, key=_instruction_order)
        domain_of = {i: i.split(":", 1)[0] for i in instructions}

        nulls: dict[tuple[str, str], np.ndarray] = {}  # attribute nulls, reused by the headline's joint null
        sims = similarity_tensors(cells, neutral_of, instructions, attrs, p.metrics, p.k, p.variant)
        result = self.new_result()
        n_errors = sum(1 for a in raw.values() if a.response.error)

        scopes: list[tuple[str, list[int]]] = [("", list(range(len(instructions))))]
        present = [d for d in p.domains if any(domain_of[i] == d for i in instructions)]
        if len(present) > 1:
            scopes += [(d, [j for j, i in enumerate(instructions) if domain_of[i] == d]) for d in present]

        sim_rows: list[list] = []
        snsr_rows: list[list] = []
        for scope, rows in scopes:
            suffix = f".{scope}" if scope else ""
            scope_sims = {m: {a: t[rows] for a, t in by_attr.items()} for m, by_attr in sims.items()}
            scope_instr = [instructions[j] for j in rows]
            attribute_metrics(p, result, scope_sims, attrs, scope_instr, cells, suffix, sim_rows, snsr_rows, scope, nulls)
            if not scope:
                headline_metrics(p, result, scope_sims, attrs, nulls)
                self._figures(result, scope_sims, attrs)
                self._parse_metrics(result, cells, scope_instr, attrs)

        k = p.k
        sim_cols = ["scope", "attribute", "value", "n_instructions", "parse_rate"]
        for m in p.metrics:
            sim_cols += [f"{m}@{k}", f"{m}@{k}_ci_low", f"{m}@{k}_ci_high"]
        result.tables.append(GroupTable(
            name="sim_by_value", columns=sim_cols, rows=sim_rows,
            description=f"Sim(a)@{k} per value vs the neutral list ({p.variant} variant), "
            f"{int(p.ci_level * 100)}% Student-t CI over instructions; parse rate = share of answers with {k} items.",
        ))
        result.tables.append(GroupTable(
            name="snsr_by_attribute",
            columns=["scope", "attribute", "metric", "snsr", "snsr_ci_low", "snsr_ci_high", "p_value", "p_adj",
                     "snsv", "snsv_ci_low", "snsv_ci_high", "most_similar", "least_similar"],
            rows=snsr_rows,
            description="SNSR = max − min of Sim(a) over the attribute's values; SNSV = their population std; "
            "p from shuffling value labels within instructions; p_adj = Holm over the attributes of one metric and scope.",
        ))
        result.examples = self._examples(raw, instructions, attrs)
        result.notes += [
            f"Similarity variant: {p.variant!r} ('fairllm-notebook', the default, is the official notebook's code behind "
            "the published tables; 'paper' the printed formulas, on another scale; 'langfair' matches LangFair 0.8.0).",
            f"Parser: {self._parse_mode()}; {len(instructions)} instructions over {', '.join(present)}; "
            f"{sum(len(v) for v in attrs.values())} sensitive values in {len(attrs)} attributes; K = {k}.",
            "SNSR's bootstrap CI cannot go below 0 (a range) and is flagged unreliable; the permutation p-value tests "
            "SNSR > chance (p_adj: Holm over attributes). Every test carries its p floor and MDE (power_note).",
        ]
        if n_errors:
            result.notes.append(f"{n_errors} responses carried an adapter error and count as empty lists.")
        return result

    def _parse_metrics(self, result, cells, instructions, attrs) -> None:
        keyed = [(NEUTRAL, v) for v in {c[2] for c in cells if c[1] == NEUTRAL}]
        keyed += [(a, v) for a, values in attrs.items() for v in values]
        rates = {cell: parse_rate(cells, instructions, *cell) for cell in keyed}
        n = len(instructions)
        neutral_rate = float(np.mean([r for (a, _), r in rates.items() if a == NEUTRAL]))
        all_ok = [cells[(i, a, v)].ok for (a, v) in keyed for i in instructions if (i, a, v) in cells]
        worst = min(rates, key=rates.get)
        result.metrics += [
            MetricValue(name="parse_rate.min", value=min(rates.values()), n=n, direction="higher_is_better",
                        description=f"lowest share of answers with {self.params.k} items over values "
                        f"(attained by {worst[0]}={worst[1]!r})"),
            MetricValue(name="parse_rate.mean", value=float(np.mean(all_ok)), n=len(all_ok),
                        direction="higher_is_better", description="share of all answers that parsed to K items"),
            MetricValue(name="parse_rate.neutral", value=neutral_rate, n=n, direction="higher_is_better",
                        description="share of neutral answers that parsed to K items"),
        ]

    def _figures(self, result, sims, attrs) -> None:
        p, k = self.params, self.params.k
        fm = p.figure_metric
        ks = list(range(1, k + 1))
        for attr, values in attrs.items():
            curves = sims[fm][attr].mean(axis=0)  # values × K
            result.figures.append(FigureSpec(
                name=f"sim_vs_k.{attr}", kind="line", title=f"Sim(a) vs K — {attr} ({fm}, {p.variant})",
                x_label="K", y_label=f"Sim(a) ({fm}@K)",
                series=[Series(label=v, x=ks, y=curves[j].tolist()) for j, v in enumerate(values)],
                caption="Mean similarity of each value's list to the neutral list at every cutoff K "
                "(FaiRLLM Figure 2); lines apart = the attribute changes the recommendations.",
            ))
        matrix = [[snsr(sims[m][a][:, :, k - 1].mean(axis=0)) for m in p.metrics] for a in attrs]
        result.figures.append(FigureSpec(
            name="snsr_heatmap", kind="heatmap", title=f"SNSR@{k} by attribute and metric ({p.variant})",
            matrix=matrix, row_labels=list(attrs), col_labels=[f"{m}@{k}" for m in p.metrics],
            caption="Higher = the stated attribute changes the list more (less fair).",
        ))

    def _examples(self, raw, instructions, attrs) -> list[Example]:
        n = self.params.n_examples
        if n == 0:
            return []
        picks: list[tuple[str, str, str]] = []
        first_attr = next(iter(attrs))
        for instr in instructions:
            if len(picks) >= n:
                break
            neutral = [c for c in raw if c[0] == instr and c[1] == NEUTRAL]
            picks += neutral[:1]
            picks.append((instr, first_attr, attrs[first_attr][0]))
        out = []
        for cell in picks[:n]:
            if cell not in raw:
                continue
            req, resp = raw[cell].request, raw[cell].response
            parsed = self._parse(resp)
            out.append(Example(fields={
                "instruction": cell[0], "attribute": cell[1], "value": cell[2], "prompt": req.user_text,
                "output": (resp.error or resp.text)[:_MAX_EXAMPLE_CHARS], "parsed": " | ".join(parsed.items),
                "parsed_ok": str(parsed.ok),
            }))
        return out


def _instruction_order(instruction: str) -> tuple[int, int]:
    domain, idx = instruction.split(":", 1)
    return (DOMAINS.index(domain) if domain in DOMAINS else len(DOMAINS), int(idx))


def curves_by_value(result: CheckResult, attribute: str) -> dict[str, list[float]]:
    """Sim(a)@1..K per value of ``attribute`` from a result's figure (for notebooks and tests)."""
    fig = next(f for f in result.figures if f.name == f"sim_vs_k.{attribute}")
    return {s.label: list(s.y) for s in fig.series}

