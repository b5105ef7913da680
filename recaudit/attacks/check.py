"""The ``shilling`` check: textual shilling attacks on item titles and rewrite defenses.

Threat model (Zhang et al., ACL 2024): an item provider can only edit its own item's title and
wants the item shown to more users. The check picks target items (or takes them), splits users
into attacker users (who tune the attack) and held-out users (who measure it), runs every
attack within its edit budget, applies every defense, and reports exposure clean → attacked →
defended per victim with paired CIs, plus edit distance, MiniLM similarity and examples.
All model calls go through ``ctx`` (cached, batched, with progress).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from recaudit.attacks.defenses import DEFENSE_NAMES, DriftDetector, LLMRewriteDefense, SpellCorrectionDefense, Vocabulary
from recaudit.attacks.pipeline import ShillingRun, ShillingSettings, run_shilling
from recaudit.attacks.prompts import default_prompts
from recaudit.attacks.strategies import ATTACK_NAMES, TextAttackOptions, build_strategy
from recaudit.attacks.summary import ExposureSummary, attacks_table, examples, exposure_figures, exposure_metrics, stealth_metrics
from recaudit.attacks.users import pick_targets, split_users
from recaudit.attacks.victim import PYesVictim, RankingVictim
from recaudit.checks import Check, CheckContext, CheckParams, register_check
from recaudit.metric_names import MetricSpec
from recaudit.data.catalog import Catalog
from recaudit.metrics.stats import bootstrap_ci
from recaudit.results import CheckResult, GroupTable, MetricValue

VictimName = Literal["pyes", "ranking"]


PAPER_CLEAN_EXPOSURE = 0.0076  # Zhang et al. ACL'24: the clean target's exposure, full catalogue ranked


def protocol_note(run: ShillingRun, fallback: bool) -> str:
    """Which exposure protocol ran, its chance rate and the clean base rate, against Zhang et al.'s (≈ 0.0076)."""
    s = run.settings
    pool = float(np.mean([t.pool_size for t in run.targets])) if run.targets else float(s.n_candidates or 0)
    chance = s.k / pool if pool else float("nan")
    clean = ", ".join(
        f"{v} {np.mean([np.mean(t.clean_hits[v]) for t in run.targets]):.3g}" for v in run.victims
    )
    scale = ("of the paper's order" if chance <= 0.05 else
             f"far above the paper's ({PAPER_CLEAN_EXPOSURE}): lifts are not comparable with its 4–10× ratios")
    if s.n_candidates is None:
        how = (f"full-top{s.k} (the paper's protocol): the target ranked among every item the user has not rated "
               f"({pool:.0f} on average)")
    else:
        how = (f"pool-{s.n_candidates}-top{s.k} (the standard sampled-negatives protocol; the paper ranks the full "
               f"catalogue): the target ranked among {s.n_candidates - 1} unseen items drawn per user")
    fb = ("variant keep_clean_fallback: an edit that loses on the attacker users is replaced by the clean title, so a "
          "harmful edit shows 0" if fallback else "every attack reports its own best title, so a harmful edit shows a negative lift")
    return (f"Protocol: {how}; exposure = share of held-out users with it in the top {s.k} (chance {chance:.3g}, {scale}). "
            f"Clean base rate: {clean} (paper {PAPER_CLEAN_EXPOSURE}). Lifts are differences (exposure.lift, exact sign-flip "
            f"test over held-out users) and ratios (exposure.lift_ratio) with paired CIs; {fb}.")


@register_check("shilling")
class ShillingCheck(Check["ShillingCheck.Params"]):
    """Textual shilling: can a provider raise its item's exposure by editing the title, and do defenses undo it?"""

    min_usable = 0.8  # the lift compares clean and attacked exposure on the same users
    marks_answers = True  # ranking replies, LLM rewrites and defense rewrites are each marked; scores are usable

    title: ClassVar[str] = "Textual shilling attacks on item titles"
    risk: ClassVar = "robustness"
    references: ClassVar[tuple[str, ...]] = (
        "Zhang et al. Stealthy Attack on Large Language Model based Recommendation. ACL 2024.",
        "Gao et al. Black-box Generation of Adversarial Text Sequences to Evade Deep Learning Classifiers (DeepWordBug). 2018.",
        "Formento et al. Using Punctuation as an Adversarial Attack on Deep Learning-Based NLP Systems (PuncAttack). 2023.",
        "Jin et al. Is BERT Really Robust? (TextFooler). AAAI 2020.",
        "Li et al. BERT-ATTACK: Adversarial Attack Against BERT Using BERT. EMNLP 2020.",
        "Morris et al. TextAttack: A Framework for Adversarial Attacks in NLP. EMNLP 2020 demos.",
        "Bao et al. TALLRec. RecSys 2023.",
    )

    class Params(CheckParams):
        targets: list[str] | None = Field(None, description="target item ids; None picks n_targets less popular items")
        n_targets: int = Field(2, ge=1)
        target_min_ratings: int = Field(20, ge=1)
        attacks: list[str] = Field(default_factory=lambda: list(ATTACK_NAMES))
        defenses: list[str] = Field(default_factory=lambda: list(DEFENSE_NAMES))
        victims: list[VictimName] = Field(default_factory=lambda: ["pyes", "ranking"])
        search_victim: VictimName = "pyes"
        k: int = Field(1, ge=1, description="top-K cut-off of exposure (1 of 100 sampled ≈ the paper's full-catalogue scale)")
        pool: Literal["sampled", "full"] = Field(
            "sampled", description="sampled: the target among n_candidates-1 unseen items drawn per user (pool-N-topK); "
            "full: among every unseen item, the paper's protocol (full-topK; pyes victim only: a prompt cannot list them all)"
        )
        n_candidates: int = Field(
            100, ge=2, description="sampled pool per user (target + n-1 unseen items); ignored when pool is full"
        )
        history_len: int = Field(10, ge=1)
        n_attacker_users: int = Field(20, ge=1)
        n_eval_users: int = Field(40, ge=2)
        min_user_interactions: int = Field(20, ge=1)
        max_char_edits: int = Field(3, ge=0, description="character attacks: Levenshtein budget")
        max_words: int = Field(2, ge=0, description="words an attack may change")
        max_added_words: int = Field(2, ge=0, description="trivial attack: words appended")
        rewrite_max_words: int = Field(10, ge=1, description="LLM rewrite: <MaxLen> words")
        rewrite_samples: int = Field(
            1, ge=1, description="LLM rewrite: 1 = the paper's single rewrite; n > 1 = variant llm_rewrite-best<n>, "
            "the best of n chosen on the attacker users"
        )
        keep_clean_fallback: bool = Field(
            False, description="variant: an attack whose best title loses to the clean one on the attacker users reports "
            "the clean title (hides a harmful edit as 0 lift); off by default, so a harmful edit shows a negative lift"
        )
        search: Literal["greedy-wir", "greedy", "beam"] = "greedy-wir"
        beam_width: int = Field(3, ge=1)
        max_evaluations: int | None = Field(60, ge=1, description="titles scored per TextAttack search")
        min_similarity: float | None = Field(0.7, ge=-1, le=1, description="MiniLM floor of word substitutions")
        char_min_similarity: float | None = Field(None, ge=-1, le=1, description="MiniLM floor of character edits")
        exhaustive: bool = False
        max_candidates: int = Field(8, ge=1)
        embeddings_path: str | None = None
        mlm_path: str | None = None
        pyes_temperature: float = Field(0.05, gt=0)
        ranking_use_embeddings: bool = True
        detector_min_similarity: float = Field(0.8, ge=-1, le=1)
        detector_max_oov_share: float = Field(0.25, ge=0, le=1)
        detector_fpr_titles: int = Field(200, ge=0, description="clean titles to measure the detector's false alarms on")
        use_wordnet: bool = True
        n_bootstrap: int = Field(1000, ge=100)
        prompts: dict[str, Any] = Field(default_factory=dict)

        @field_validator("attacks")
        @classmethod
        def _known_attacks(cls, v: list[str]) -> list[str]:
            bad = [a for a in v if a not in ATTACK_NAMES]
            if bad or not v:
                raise ValueError(f"attacks must be a non-empty subset of {list(ATTACK_NAMES)}; unknown: {bad}")
            return list(dict.fromkeys(v))

        @field_validator("defenses")
        @classmethod
        def _known_defenses(cls, v: list[str]) -> list[str]:
            bad = [d for d in v if d not in DEFENSE_NAMES]
            if bad:
                raise ValueError(f"defenses must be a subset of {list(DEFENSE_NAMES)}; unknown: {bad}")
            return list(dict.fromkeys(v))

        @model_validator(mode="after")
        def _consistent(self):
            if not self.victims:
                raise ValueError("victims must name at least one of 'pyes', 'ranking'")
            if self.search_victim not in self.victims:
                raise ValueError(f"search_victim {self.search_victim!r} must be one of victims {self.victims}")
            if self.pool == "sampled" and self.n_candidates <= self.k:
                raise ValueError(f"n_candidates ({self.n_candidates}) must exceed k ({self.k})")
            if self.pool == "full" and "ranking" in self.victims:
                raise ValueError("pool 'full' ranks every unseen item: only the pyes victim scores items one by one, the "
                                 "ranking victim cannot list them in one prompt; use victims: [pyes] or pool: sampled")
            default_prompts().with_overrides(self.prompts)  # unknown prompt keys fail here, before any model call
            return self

    params: Params  # typed: the check reads its own fields

    # an attack's names may carry its variant: textfooler-wordnet, llm_rewrite-best<n> ({attacks}*)
    metrics = (
        MetricSpec("exposure.clean.{victims}"),
        MetricSpec("exposure.defense_shift.{defenses}.{victims}"),
        MetricSpec("exposure.lift.{attacks}*.{victims}", headline=True),
        MetricSpec("exposure.*.{attacks}*.{victims}"),  # attacked, lift_ratio, collateral
        MetricSpec("exposure.*.{attacks}*.{defenses}.{victims}"),  # defended, recovery, residual_lift
        MetricSpec("{m}.*.{attacks}*", values={"m": ("stealth", "attack")}),
        MetricSpec("detector.flag_rate.{attacks}*", when=lambda p: "detector" in p.defenses),
        MetricSpec("detector.false_positive_rate", when=lambda p: "detector" in p.defenses),
    )

    def run(self, ctx: CheckContext) -> CheckResult:
        p = self.params
        catalog = ctx.require_catalog(self.name)
        interactions = ctx.require_interactions(self.name)
        prompts = default_prompts().with_overrides(p.prompts)
        targets = [str(t) for t in p.targets] if p.targets else pick_targets(catalog, interactions, p.n_targets, p.seed, p.target_min_ratings)
        missing = [t for t in targets if t not in catalog]
        if missing:
            raise ValueError(f"targets not in the catalogue: {missing}")
        split = split_users(interactions, targets, p.n_attacker_users, p.n_eval_users, p.seed, p.min_user_interactions)
        victims = {}
        if "pyes" in p.victims:
            victims["pyes"] = PYesVictim(ctx, catalog, temperature=p.pyes_temperature)
        if "ranking" in p.victims:
            victims["ranking"] = RankingVictim(ctx, catalog, prompts, use_embeddings=p.ranking_use_embeddings)
        ta = TextAttackOptions(
            search=p.search, beam_width=p.beam_width, max_evaluations=p.max_evaluations, min_similarity=p.min_similarity,
            char_min_similarity=p.char_min_similarity,
            exhaustive=p.exhaustive, max_candidates=p.max_candidates, embeddings_path=p.embeddings_path, mlm_path=p.mlm_path,
        )
        strategies = [
            build_strategy(
                a, ctx, prompts, max_char_edits=p.max_char_edits, max_words=p.max_words, max_added_words=p.max_added_words,
                rewrite_max_words=p.rewrite_max_words, rewrite_samples=p.rewrite_samples, textattack=ta,
                keep_clean_fallback=p.keep_clean_fallback,
            )
            for a in p.attacks
        ]
        llm_defense = LLMRewriteDefense(ctx, prompts)
        factories = {
            "llm_rewrite": lambda vocab: llm_defense,
            "spell": lambda vocab: SpellCorrectionDefense(vocab),
            "detector": lambda vocab: DriftDetector(vocab, p.detector_min_similarity, p.detector_max_oov_share),
        }
        settings = ShillingSettings(
            k=p.k, n_candidates=None if p.pool == "full" else p.n_candidates, history_len=p.history_len, search_victim=p.search_victim,
            use_wordnet=p.use_wordnet, seed=p.seed,
        )
        run = run_shilling(
            catalog, interactions, targets, split, victims, strategies, [factories[d] for d in p.defenses], settings,
            progress=ctx.progress,
        )
        result = self.summarise(run)
        if "detector" in p.defenses and p.detector_fpr_titles:
            result.metrics.append(self._detector_false_alarms(catalog, targets))
        result.notes.extend(self._notes(run, victims, llm_defense if "llm_rewrite" in p.defenses else None))
        return result

    def summarise(self, run: ShillingRun) -> CheckResult:
        """The CheckResult of a finished run (pure)."""
        s = ExposureSummary(run, n_resamples=self.params.n_bootstrap, seed=self.params.seed)
        metrics, exposure_table = exposure_metrics(s)
        # the protocol goes with every exposure number (a pool-10 lift is not a paper-scale lift)
        proto = run.protocol + ("-fallback" if self.params.keep_clean_fallback else "")
        metrics = [m.model_copy(update={"variant": proto}) for m in metrics]
        metrics += stealth_metrics(s)
        unavailable = [
            [rec.outcome.attack, rec.outcome.variant, rec.outcome.available, rec.outcome.reason]
            for rec in run.targets[0].attacks
            if not rec.outcome.available or rec.outcome.reason
        ]
        tables = [exposure_table, attacks_table(run)]
        if unavailable:
            tables.append(GroupTable(name="attack_availability", columns=["attack", "variant", "available", "reason"], rows=unavailable))
        return self.new_result(
            metrics=metrics, tables=tables, figures=exposure_figures(s) if s.variants else [], examples=examples(run),
        )

    def _detector_false_alarms(self, catalog: Catalog, targets: list[str]) -> MetricValue:
        """Share of unedited catalogue titles the detector calls unnatural (each judged without its own words)."""
        p = self.params
        pool = [it for it in catalog if it.item_id not in set(targets)]
        rng = np.random.default_rng(p.seed)
        sample = [pool[i] for i in rng.choice(len(pool), size=min(p.detector_fpr_titles, len(pool)), replace=False)]
        flags = []
        for it in sample:
            det = DriftDetector(Vocabulary.from_catalog(catalog, exclude=[it.item_id], use_wordnet=p.use_wordnet),
                                p.detector_min_similarity, p.detector_max_oov_share)
            flags.append(det.vocabulary.oov_share(it.title) > det.max_oov_share)
        iv = bootstrap_ci(np.asarray(flags, float), n_resamples=p.n_bootstrap, seed=p.seed)
        return MetricValue(
            name="detector.false_positive_rate", value=iv.value, ci_low=iv.low, ci_high=iv.high, n=iv.n,
            direction="lower_is_better", description="share of clean catalogue titles flagged as unnatural",
        )

    def _notes(self, run: ShillingRun, victims: dict, llm_defense: LLMRewriteDefense | None) -> list[str]:
        s = run.settings
        notes = [
            f"{len(run.split.attacker)} attacker users tune each attack against the {s.search_victim} victim; exposure is "
            f"measured on {len(run.split.held_out)} other users ({run.protocol}).",
            protocol_note(run, self.params.keep_clean_fallback),
        ]
        others = [v for v in run.victims if v != s.search_victim]
        if others:
            notes.append(f"Exposure on the {', '.join(others)} victim(s) measures transfer: the search never queried them.")
        for rec in run.targets[0].attacks:
            if not rec.outcome.available:
                notes.append(f"Attack {rec.outcome.attack} unavailable: {rec.outcome.reason}")
            elif rec.outcome.reason:
                notes.append(f"Attack {rec.outcome.attack} ran as {rec.outcome.variant}: {rec.outcome.reason}")
        if "ranking" in victims:
            st = victims["ranking"].parse_status
            notes.append(f"Ranking victim replies parsed: {dict(st)} (ok = K items, short = fewer, empty = none).")
        if llm_defense is not None and llm_defense.empty_replies:
            notes.append(f"LLM rewrite defense: {llm_defense.empty_replies} empty replies kept the submitted title.")
        return notes
