"""The ``unlearning`` check: can the recommender forget users, and does the forgetting hold up?

Trains the TALLRec recommender, asks it to forget a set of users with each method, and reports
utility, forgetting quality against a retrained model, membership-inference leakage and time.
It trains its own model from ``params.model`` (the audited adapter is not used), and writes
adapter checkpoints only under ``ctx.workdir``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from recaudit.checks import Check, CheckContext, register_check
from recaudit.metric_names import MetricSpec
from recaudit.results import CheckResult, FigureSpec, GroupTable, MetricValue, Series
from recaudit.unlearning.experiment import UnlearningRun, run_unlearning
from recaudit.unlearning.params import UnlearningParams
from recaudit.unlearning.verify import MethodReport

REFERENCES = (
    "Hu et al. Exact and Efficient Unlearning for Large Language Model-based Recommendation (APA). SIGIR 2024.",
    "Wang et al. Towards Efficient and Effective Unlearning of Large Language Models for Recommendation (E2URec). 2024.",
    "Bao et al. TALLRec: An Effective and Efficient Tuning Framework to Align LLM with Recommendation. RecSys 2023.",
    "Bourtoule et al. Machine Unlearning (SISA). IEEE S&P 2021.",
    "Yeom et al. Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting. CSF 2018.",
)

TABLE_COLUMNS = [
    "method", "test AUC", "test ACC", "test LogLoss", "forget AUC", "forget ACC", "forget LogLoss",
    "JS to retrain (forget)", "MIA advantage", "MIA advantage CI", "MIA AUC", "unlearn s", "speed-up vs retrain",
    "JSD (forget)", "L2 (forget)", "Confidence (forget)", "inference ms/sample", "variant",
]  # fmt: skip


def _r(x: float, nd: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def run_to_result(check: Check, run: UnlearningRun) -> CheckResult:
    """Turn an experiment into the typed result: metrics per method, one table, two figures, notes."""
    retrain_s = next((r.unlearn_seconds for r in run.reports if r.method == "retrain"), float("nan"))
    metrics: list[MetricValue] = []
    rows: list[list[Any]] = []
    for r in run.reports:
        metrics.extend(_metrics(r))
        speedup = retrain_s / r.unlearn_seconds if r.unlearn_seconds > 0 and r.method != "original" else None
        rows.append([
            r.method, _r(r.test["auc"]), _r(r.test["acc"]), _r(r.test["logloss"]), _r(r.forget["auc"]),
            _r(r.forget["acc"]), _r(r.forget["logloss"]), _r(r.js_to_retrain_forget, 5), _r(r.mia_advantage),
            f"[{_r(r.mia_advantage_low, 3)}, {_r(r.mia_advantage_high, 3)}]", _r(r.mia_auc),
            _r(r.unlearn_seconds, 2) if r.method != "original" else None, _r(speedup, 2),
            _r(r.jsd_forget, 5), _r(r.l2_forget, 5), _r(r.confidence_forget), _r(r.inference_ms_per_sample, 3),
            r.details.get("variant") or r.details.get("exactness"),
        ])  # fmt: skip
    if run.exactness:
        ex = run.exactness
        metrics.append(MetricValue(name="apa.exact_retrained_shards", value=float(ex["retrained_bitwise_equal"]),
                                   direction="higher_is_better", description="1 if every retrained APA shard equals, bit for bit, the shard trained from scratch without the forgotten data"))  # fmt: skip
        metrics.append(MetricValue(name="apa.untouched_shards_identical", value=float(ex["untouched_byte_identical"]),
                                   direction="higher_is_better", description="1 if every APA shard that held no forgotten data kept a byte-identical safetensors file"))  # fmt: skip
    methods = [r.method for r in run.reports if r.method != "original"]
    unlearn = [next(r.unlearn_seconds for r in run.reports if r.method == m) for m in methods]
    mia = run.reports
    figures = [
        FigureSpec(name="unlearn_seconds", kind="bar", title="Wall time to unlearn", x_label="method", y_label="seconds",
                   series=[Series(label="unlearn seconds", x=methods, y=unlearn)]),
        FigureSpec(name="mia_advantage", kind="bar", title="Membership-inference advantage on the forget set",
                   x_label="method", y_label="advantage (0 = no leak)",
                   series=[Series(label="MIA advantage", x=[r.method for r in mia], y=[r.mia_advantage for r in mia],
                                  y_low=[r.mia_advantage_low for r in mia], y_high=[r.mia_advantage_high for r in mia])],
                   caption="Loss-threshold attack: forget samples (members before unlearning) vs samples of never-seen users."),
    ]  # fmt: skip
    notes = [
        f"Data: {run.data}. Forgotten users' training samples form the forget set; never-seen users' samples are the MIA non-members.",
        "retrain is the exact-unlearning reference: JS divergence and forget-set metrics are read against it.",
        "APA exactness: a retrained shard equals training that shard from scratch without the forgotten samples (same "
        "shared init, same sample order); with partition 'kmeans'/'user_kmeans' this holds for the fixed partition "
        "(fixed-partition exact: a re-run of the clustering on the remaining data may move samples), with 'user_hash' "
        "for the whole pipeline (whole-pipeline exact). Centroids are recomputed from the remaining samples.",
    ]
    if run.exactness:
        notes.append(f"APA exactness check: {run.exactness}.")
    apa = next((r for r in run.reports if r.method == "apa_d"), None)
    if apa is not None:
        notes.append(f"APA ({apa.details.get('exactness')}, partition {apa.details.get('partition')}, shared LoRA init "
                     f"{apa.details.get('shared_init')}): sub-model test AUC before aggregation "
                     f"{[_r(a) for a in apa.details.get('shard_test_auc', [])]}; unlearning seconds per affected shard "
                     f"{ {k: _r(v, 2) for k, v in apa.details.get('per_shard_unlearn_seconds', {}).items()} }.")  # fmt: skip
    notes.append("Inference ms/sample: wall time to score the test set, batched, divided by its size; for APA and "
                 "RecEraser the query embeddings (routing) are computed before the timing.")
    notes.append("JSD, L2 and Confidence are the E2URec paper's measures as its official evaluate.py computes them "
                 "(vocabulary softmax at the first answer token vs the retrained model; JSD is 0.5 KL(p||q) + 0.5 KL(q||p)); "
                 "'JS to retrain' is recaudit's Bernoulli JS of P(Yes). RecEraser has no vocabulary distribution (NaN).")
    if run.erasure:
        e = run.erasure
        notes.append(f"Erasure request {e['request_id']}: {e['forgotten_users']} user(s), salted SHA-256 of their ids "
                     f"{e['forgotten_ids_salted_sha256']} (salt not stored); adapters trained with them "
                     f"{'kept (--keep-artifacts)' if e['kept_artifacts'] else 'deleted: ' + ', '.join(e['deleted_artifacts'])}.")
    if run.runtime:
        notes.append("Runtime: " + ", ".join(f"{k} {v}" for k, v in run.runtime.items()) + ".")
    train = run.params.get("train") or {}
    if run.params.get("train_samples"):
        notes.append(f"Few-shot: {run.params['train_samples']} training samples drawn from the training split (TALLRec's regime).")
    if train.get("early_stop_patience"):
        notes.append(f"Early stopping: each adapter trained from scratch keeps its best validation-AUC step (patience "
                     f"{train['early_stop_patience']} evaluations; {run.data.get('valid', 0)} validation samples, "
                     "none of a forgotten user).")  # fmt: skip
    if run.prefix_cache_seconds:
        notes.append(f"LoRA on the top {train.get('lora_layers')} blocks; the frozen bottom blocks ran once per sample "
                     f"({run.prefix_cache_seconds:.1f} s, shared by every method and excluded from every method's time).")  # fmt: skip
    for r in run.reports:
        if r.method in ("retrain", "original") or r.jsd_forget != r.jsd_forget:
            continue
        metrics.append(MetricValue(name=f"jsd.forget.{r.method}", value=r.jsd_forget, n=r.forget["n"], direction="lower_is_better",
                                   description="E2URec's JSD to the retrained model over the vocabulary (forget set)"))  # fmt: skip
        metrics.append(MetricValue(name=f"l2.forget.{r.method}", value=r.l2_forget, n=r.forget["n"], direction="lower_is_better",
                                   description="E2URec's L2 between vocabulary distributions and the retrained model's (forget set)"))  # fmt: skip
    result = check.new_result(
        metrics=metrics,
        tables=[GroupTable(name="unlearning methods", columns=TABLE_COLUMNS, rows=rows)],
        figures=figures,
        notes=notes,
    )
    result.params = dict(run.params) if run.params else result.params  # forget ids hashed, never plain
    if run.erasure:
        result.params["erasure"] = run.erasure
    return result


def _metrics(r: MethodReport) -> list[MetricValue]:
    m = r.method
    out = [
        MetricValue(name=f"auc.test.{m}", value=r.test["auc"], n=r.test["n"], direction="higher_is_better",
                    description=f"test AUC of {m}"),
        MetricValue(name=f"auc.forget.{m}", value=r.forget["auc"], n=r.forget["n"], direction="neutral",
                    description=f"forget-set AUC of {m} (compare with retrain's)"),
        MetricValue(name=f"logloss.forget.{m}", value=r.forget["logloss"], n=r.forget["n"], direction="neutral"),
        MetricValue(name=f"js_to_retrain.forget.{m}", value=r.js_to_retrain_forget, n=r.forget["n"],
                    direction="lower_is_better", description="mean JS divergence (bits) of P(Yes) to the retrained model on the forget set"),
        MetricValue(name=f"mia.advantage.{m}", value=r.mia_advantage, ci_low=r.mia_advantage_low,
                    ci_high=r.mia_advantage_high, direction="lower_is_better",
                    description="loss-threshold membership-inference advantage, forget vs never-seen samples"),
        MetricValue(name=f"mia.auc.{m}", value=r.mia_auc, direction="lower_is_better"),
    ]  # fmt: skip
    if m != "original":
        out.append(MetricValue(name=f"inference_ms.{m}", value=r.inference_ms_per_sample, n=r.test["n"],
                               direction="lower_is_better", description="wall ms per test sample to score (batched)"))  # fmt: skip
        out.append(MetricValue(name=f"unlearn_seconds.{m}", value=r.unlearn_seconds, direction="lower_is_better",
                               description="wall seconds to unlearn (retrain: full training)"))  # fmt: skip
    return out


@register_check("unlearning")
class UnlearningCheck(Check[UnlearningParams]):
    """Exact (retrain, SISA, RecEraser, APA) and approximate (E2URec, Bad-T, NegGrad, gradient ascent) unlearning, verified."""

    records_evidence = False  # trains and evaluates its own models; its evidence is that record

    title = "Unlearning: forgetting users in an LLM recommender"
    risk = "privacy"
    references = REFERENCES
    Params = UnlearningParams
    # per method; apa reports apa_d and apa_nd ({methods}*); retrain always runs, original when included
    _per_method = ("auc.test", "auc.forget", "logloss.forget", "js_to_retrain.forget", "mia.advantage", "mia.auc",
                   "inference_ms", "unlearn_seconds", "jsd.forget", "l2.forget")
    metrics = (
        MetricSpec("mia.advantage.{methods}*", headline=True),
        MetricSpec("{m}.{methods}*", values={"m": _per_method}),
        MetricSpec("{m}.retrain", values={"m": _per_method}),
        MetricSpec("{m}.original", values={"m": _per_method}, when=lambda p: p.include_original),
        MetricSpec("apa.{m}", values={"m": ("exact_retrained_shards", "untouched_shards_identical")},
                   when=lambda p: "apa" in p.methods),
    )

    def run(self, ctx: CheckContext) -> CheckResult:
        catalog = ctx.require_catalog(self.name)
        interactions = ctx.require_interactions(self.name)
        params: UnlearningParams = self.params  # type: ignore[assignment]

        def say(msg: str) -> None:
            list(ctx.progress([msg], f"unlearning: {msg}", 1))

        if ctx.workdir is not None:
            run = run_unlearning(catalog, interactions, params, Path(ctx.workdir) / "unlearning", progress=say)
        else:
            with tempfile.TemporaryDirectory(prefix="recaudit-unlearning-") as tmp:
                run = run_unlearning(catalog, interactions, params, tmp, progress=say)
        return run_to_result(self, run)
