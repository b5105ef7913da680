"""Reproduction table: each check's paper claim beside recaudit's figure on SmolLM2-135M + MovieLens 100K.

    nice -n 10 timeout 1200 python benchmarks/reproduction.py --data /work/shared/data/ml-100k
    python benchmarks/reproduction.py --table            # print the markdown table from the JSON

Runs the user/item-side checks (fairllm, implicit_names, item_fairness, exposure, shilling) through
``recaudit.run_check`` on the embedded SmolLM2-135M-Instruct (the ``default`` adapter, CPU) at a
sample sized for ~15 minutes on 2 shared CPU cores, and reads the privacy rows (TALLRec, APA,
E2URec, PPLR) from the existing unlearning*/federated result files. SmolLM2-135M is a demo model:
no row is evidence about a shipped recommender, only a check that the pipeline computes the
paper's quantity and whether, at this sample, its direction shows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = RESULTS / "reproduction.json"
COMMAND = "nice -n 10 timeout 1200 python benchmarks/reproduction.py --data <ml-100k>"
DEMO = "SmolLM2-135M-Instruct (demo model; not evidence about any shipped recommender)"

GEN = dict(temperature=0.0, repetition_penalty=1.3)
# per scale: check -> params. "default" is what the committed JSON ran; "smoke" only tests the wiring.
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "fairllm": dict(domains=["movie"], n_names=5, attributes=["gender", "race"], k=10, max_new_tokens=160,
                        parse_mode="robust", n_bootstrap=1000, n_permutations=1000, **GEN),
        "implicit_names": dict(domains=["news"], locales=["en_US", "yo_NG"], conditions=["implicit"], n_names=4, k=5,
                               max_new_tokens=100, n_bootstrap=1000, n_permutations=1000,
                               classical=["toppop", "itemknn", "bpr"], classical_attributes=["gender"], **GEN),
        "item_fairness": dict(n_users=20, k=10, max_new_tokens=80, n_bootstrap=1000, n_permutations=2000,
                              ks=[1, 5, 10, 20], **GEN),
        "exposure": dict(n_users=12, k=10, strategies=["simple"], system_prompts=["normal"], max_new_tokens=160,
                         n_bootstrap=1000, n_permutations=2000, **GEN),
        "shilling": dict(n_targets=1, attacks=["trivial", "llm_rewrite", "deepwordbug"], defenses=["spell"],
                         victims=["pyes"], k=3, n_candidates=20, n_attacker_users=6, n_eval_users=24,
                         min_user_interactions=10, target_min_ratings=5, max_evaluations=24, n_bootstrap=1000,
                         detector_fpr_titles=0),
    },
    "smoke": {
        "fairllm": dict(domains=["movie"], n_names=1, attributes=["gender"], k=10, max_new_tokens=160,
                        parse_mode="robust", n_bootstrap=100, n_permutations=100, **GEN),
        "implicit_names": dict(domains=["news"], locales=["en_US", "yo_NG"], conditions=["implicit"], n_names=1, k=5,
                               max_new_tokens=100, n_bootstrap=100, n_permutations=100,
                               classical=["toppop"], classical_attributes=["gender"], **GEN),
        "item_fairness": dict(n_users=3, k=10, max_new_tokens=80, n_bootstrap=100, n_permutations=100,
                              baselines=["toppop"], **GEN),
        "exposure": dict(n_users=3, k=10, strategies=["simple"], system_prompts=["normal"], max_new_tokens=160,
                         n_bootstrap=100, n_permutations=100, baselines=["toppop"], **GEN),
        "shilling": dict(n_targets=1, attacks=["trivial"], defenses=["spell"], victims=["pyes"], k=3, n_candidates=10,
                         n_attacker_users=3, n_eval_users=4, min_user_interactions=10, target_min_ratings=5,
                         max_evaluations=8, n_bootstrap=100, detector_fpr_titles=0),
    },
}


@dataclass
class Figure:
    """One metric as the table shows it."""

    name: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    n: int | None = None
    variant: str | None = None


@dataclass
class Row:
    """One line of the reproduction table."""

    check: str
    paper: str
    claim: str
    protocol: str
    figures: list[Figure]
    holds: str  # "holds" | "does not hold" | "cannot tell" | "GPU run pending"
    why: str
    source: str  # the command or file the figures come from
    status: str = ""
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)


# --- numbers ----------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _fig(metrics: dict[str, dict], name: str) -> Figure:
    m = metrics.get(name)
    if m is None:
        return Figure(name=name, value=None)
    return Figure(name=name, value=_num(m.get("value")), ci_low=_num(m.get("ci_low")), ci_high=_num(m.get("ci_high")),
                  p=_num(m.get("p_value")), n=m.get("n"), variant=m.get("variant"))


def fmt(f: Figure) -> str:
    """`name = v [lo, hi], p = …` for the table."""
    if f.value is None:
        return f"{f.name}: n/a"
    s = f"{f.name} = {f.value:.3g}"
    if f.ci_low is not None and f.ci_high is not None:
        s += f" [{f.ci_low:.3g}, {f.ci_high:.3g}]"
    if f.p is not None:
        s += f", p = {f.p:.3g}"
    if f.n is not None:
        s += f" (n={f.n})"
    return s


def sign_verdict(f: Figure, alpha: float = 0.05) -> tuple[str, str]:
    """Direction "> 0" from a CI (and p when there is one): holds / does not hold / cannot tell."""
    if f.value is None:
        return "cannot tell", f"{f.name} was not computed"
    if f.ci_low is not None and f.ci_low > 0 and (f.p is None or f.p < alpha):
        return "holds", f"{f.name} > 0 with its CI above 0"
    if f.ci_high is not None and f.ci_high < 0:
        return "does not hold", f"{f.name} < 0 with its CI below 0 (opposite direction)"
    if f.p is not None and f.p < alpha and f.value > 0:
        return "holds", f"{f.name} > 0, p < {alpha}"
    return "cannot tell", f"{f.name}'s CI spans 0 / p ≥ {alpha} at this sample"


# --- user/item-side rows --------------------------------------------------------------------------


def _protocol(name: str, p: dict[str, Any], n_req: int | None) -> str:
    base = "SmolLM2-135M-Instruct (default adapter, CPU, greedy, repetition_penalty 1.3)"
    if name == "fairllm":
        return (f"{base}; FaiRLLM's shipped names, {p['domains']}, {p['n_names']} names × attributes {p['attributes']}, "
                f"K={p['k']} (paper 500 names × 8 attributes, K=20); variant fairllm-notebook, robust parser; "
                f"{n_req} prompts")
    if name == "implicit_names":
        return (f"{base}; Faker names {p['locales']}, {p['n_names']} per gender per locale, domain {p['domains']}, "
                f"K={p['k']}; classical {p['classical']} on MovieLens 100K with explicit {p['classical_attributes']} "
                f"(paper: ChatGPT vs DCN/STAMP/GRU4Rec on MIND/jobs); {n_req} prompts")
    if name == "item_fairness":
        return (f"{base}; MovieLens 100K, {p['n_users']} users, 10-item histories, K-nearest list construction "
                f"(paper: BIGRec fine-tuned LLaMA); 5 popularity buckets; {n_req} prompts")
    if name == "exposure":
        return (f"{base}; MovieLens 100K, {p['n_users']} users, strategies {p['strategies']}, roles "
                f"{p['system_prompts']}, K={p['k']} (paper: ChatGPT, MovieLens, 6 strategies); {n_req} prompts")
    if name == "shilling":
        return (f"{base}; MovieLens 100K, {p['n_targets']} target, attacks {p['attacks']}, pyes victim, pool of "
                f"{p['n_candidates']} candidates, top-{p['k']}, {p['n_attacker_users']} attacker / {p['n_eval_users']} "
                f"held-out users (paper: full Amazon pool, clean 0.0076); {n_req} victim calls")
    return base


def _first(metrics: dict[str, dict], prefix: str, suffix: str = "") -> str | None:
    for k in metrics:
        if k.startswith(prefix) and k.endswith(suffix):
            return k
    return None


def row_fairllm(metrics: dict[str, dict], p: dict[str, Any]) -> tuple[list[Figure], str, str]:
    """SNSR of PRAG (the paper's figure) and of Jaccard, max over attributes, with the permutation p."""
    k = p["k"]
    figs = [_fig(metrics, f"snsr.prag@{k}.max"), _fig(metrics, f"snsr.jaccard@{k}.max")]
    figs += [_fig(metrics, "parse_rate.mean")]
    f = figs[0]
    if f.value is None:
        return figs, "cannot tell", "no SNSR computed"
    if f.p is not None and f.p < 0.05:
        return figs, "holds", "SNSR(PRAG) > 0 by the paired permutation test (swap values within an instruction)"
    return figs, "cannot tell", f"SNSR(PRAG) permutation p = {f.p if f.p is None else round(f.p, 3)} ≥ 0.05 at {p['n_names']} names"


def row_implicit(metrics: dict[str, dict], p: dict[str, Any]) -> tuple[list[Figure], str, str]:
    """LLM implicit U-NDCG and JS between name groups beside the classical recommenders' explicit U-NDCG."""
    k = p["k"]
    d = p["domains"][0]
    figs = [_fig(metrics, f"implicit.u_ndcg@{k}.gender.{d}"), _fig(metrics, f"implicit.js.gender.{d}"),
            _fig(metrics, f"implicit.js.region.{d}")]
    classical = [n for n in metrics if n.startswith("classical.") and "u_ndcg" in n]
    figs += [_fig(metrics, n) for n in classical[:4]]
    llm = figs[0].value
    best = [f.value for f in figs[3:] if f.value is not None]
    if llm is None or not best:
        return figs, "cannot tell", "the LLM's implicit U-NDCG or the classical explicit U-NDCG is missing"
    cmp = "exceeds" if llm > max(best) else "does not exceed"
    js = figs[1]
    sig = js.p is not None and js.p < 0.05
    holds = "holds" if (llm > max(best) and sig) else "cannot tell"
    return figs, holds, (f"LLM implicit U-NDCG {llm:.3g} {cmp} the best classical explicit {max(best):.3g}; "
                         f"name-group JS p = {js.p if js.p is None else round(js.p, 3)} "
                         "(different domains: news categories vs MovieLens, so the comparison is only of direction)")


def row_item(metrics: dict[str, dict], p: dict[str, Any]) -> tuple[list[Figure], str, str]:
    """GU of the most popular bucket (b4) must be > 0 for the paper's popularity bias."""
    top = f"gu.popularity.b{4}"
    figs = [_fig(metrics, top), _fig(metrics, "dgu.popularity"), _fig(metrics, "mgu.popularity"),
            _fig(metrics, "dgu.genre"), _fig(metrics, "mgu.genre"), _fig(metrics, "embedded_rate")]
    for name in ("dgu@20.popularity", "dgu@1.popularity"):
        if name in metrics:
            figs.append(_fig(metrics, name))
    holds, why = sign_verdict(figs[0])
    return figs, holds, f"most popular bucket: {why}"


def row_exposure(metrics: dict[str, dict], p: dict[str, Any]) -> tuple[list[Figure], str, str]:
    """Gini/HHI/entropy of the LLM's exposure beside TopPop's, and recency vs the classical baselines."""
    s, r = p["strategies"][0], p["system_prompts"][0]
    figs = [_fig(metrics, f"exposure.gini.{s}.{r}"), _fig(metrics, "baseline.toppop.gini"),
            _fig(metrics, "baseline.itemknn.gini"), _fig(metrics, "baseline.bpr.gini"),
            _fig(metrics, f"exposure.hhi.{s}.{r}"), _fig(metrics, f"exposure.entropy.{s}.{r}"),
            _fig(metrics, f"recency.median_year.{s}.{r}"), _fig(metrics, "baseline.toppop.median_year"),
            _fig(metrics, f"grounded_rate.{s}.{r}")]
    g, tp = figs[0].value, figs[1].value
    yr, tpy = figs[6].value, figs[7].value
    if g is None or tp is None:
        return figs, "cannot tell", "Gini or the TopPop baseline missing"
    parts = [f"Gini {g:.3g} vs TopPop {tp:.3g} ({'below' if g < tp else 'not below'}, as paper 0.982 < 0.995)"]
    if yr is not None and tpy is not None:
        parts.append(f"median year {yr:.0f} vs TopPop {tpy:.0f} ({'more recent' if yr > tpy else 'not more recent'})")
    ok = g < tp and (yr is None or tpy is None or yr > tpy)
    # Gini over the whole catalogue with a dozen users has no CI reported on the difference: a direction only
    return figs, ("holds" if ok else "does not hold") + " (point estimates)", "; ".join(parts)


def row_shilling(metrics: dict[str, dict], p: dict[str, Any]) -> tuple[list[Figure], str, str]:
    """Clean exposure and each attack's paired lift (sign-flip p), and the ratio."""
    figs = [_fig(metrics, "exposure.clean.pyes")]
    verdicts = []
    for a in p["attacks"]:
        lift = _first(metrics, f"exposure.lift.{a}", ".pyes")
        ratio = _first(metrics, f"exposure.lift_ratio.{a}", ".pyes")
        if lift:
            f = _fig(metrics, lift)
            figs.append(f)
            verdicts.append((a, *sign_verdict(f)))
        if ratio:
            figs.append(_fig(metrics, ratio))
    for d in p["defenses"]:
        for a in p["attacks"]:
            rec = _first(metrics, f"exposure.recovery.{a}", f".{d}.pyes")
            if rec:
                figs.append(_fig(metrics, rec))
    if not verdicts:
        return figs, "cannot tell", "no attack lift computed"
    held = [a for a, h, _ in verdicts if h == "holds"]
    against = [a for a, h, _ in verdicts if h == "does not hold"]
    why = "; ".join(f"{a}: {h}" for a, h, _ in verdicts)
    if held:
        return figs, "holds" + ("" if len(held) == len(verdicts) else " (some attacks)"), why
    if against:
        return figs, "does not hold", why
    return figs, "cannot tell", why


CLAIMS: dict[str, tuple[str, str, Callable]] = {
    "fairllm": ("FaiRLLM, Zhang et al. RecSys'23",
                "ChatGPT's lists change when the user states a sensitive attribute: SNSR/SNSV > 0 on all 8 "
                "attributes, music and movies (500 names, K=20)", row_fairllm),
    "implicit_names": ("Implicit user unfairness, Xu et al. 2023",
                       "names alone shift ChatGPT's recommendations; implicit U-NDCG@1 (gender, news) 0.305 vs best "
                       "classical explicit 0.225 (+35.6%); jobs 0.365 vs 0.25", row_implicit),
    "item_fairness": ("IFairLRS, Jiang et al. WWW'24",
                      "BIGRec over-recommends the most popular items (Pos GU on the top bucket) and popular genres; "
                      "Video Games BIGRec DGU 0.151 / MGU 0.029 (via Flower, Gao et al. 2025)", row_item),
    "exposure": ("Prompting-side item fairness, Deldjoo 2024",
                 "ChatGPT's exposure is concentrated (Gini 0.982, HHI 0.0172, entropy 5.04, simple prompt) but less "
                 "than TopPop (0.995)/BPR-MF (0.992); it recommends more recent movies (median 1997–2007 vs 1995)",
                 row_exposure),
    "shilling": ("Stealthy textual attacks, Zhang et al. ACL'24",
                 "editing only the target's title raises its exposure: clean 0.0076 → GPT rewrite 0.0335 (4.4×), "
                 "TextFooler 0.0768 (10×); rewrite defenses take most of it back", row_shilling),
}


def settle(row: Row) -> Row:
    """An incomplete or crashed check cannot show a direction, whatever its point estimates say."""
    if row.status in ("incomplete", "error") and not row.holds.startswith("cannot tell"):
        row.why = f"{row.status} ({row.notes[1] if len(row.notes) > 1 else ''}); estimates alone: {row.holds}: {row.why}"
        row.holds = "cannot tell"
    return row


def run_checks(data: Path, scale: str, only: list[str] | None, threads: int | None) -> list[Row]:
    """Load SmolLM2 once and run each check; one Row per check."""
    import recaudit
    from recaudit.adapters import default
    from recaudit.data.loaders import load_movielens_100k

    catalog, interactions = load_movielens_100k(data)
    t0 = time.perf_counter()
    adapter = default(torch_threads=threads)
    print(f"model object built in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    rows = []
    for name, params in SCALES[scale].items():
        if only and name not in only:
            continue
        t = time.perf_counter()
        res = recaudit.run_check(name, adapter, catalog=catalog, interactions=interactions, **params)
        secs = time.perf_counter() - t
        metrics = {m.name: m.model_dump(mode="json") for m in res.metrics}
        paper, claim, build = CLAIMS[name]
        full = dict(res.params)
        n_req = res.coverage.requested if res.coverage else None
        try:
            figs, holds, why = build(metrics, full)
        except Exception as e:  # a missing metric must not lose the other rows
            figs, holds, why = [], "cannot tell", f"table builder failed: {type(e).__name__}: {e}"
        cov = f"{res.coverage.usable}/{res.coverage.requested} usable" if res.coverage else "no coverage"
        notes = [f"status {res.status}: {res.verdict.reason or ''}".strip(), cov]
        if res.status == "error":
            notes.append((res.error or "")[:400])
        rows.append(Row(check=name, paper=paper, claim=claim, protocol=_protocol(name, full, n_req), figures=figs,
                        holds=holds, why=why, source=f"{COMMAND}  (check {name!r})", status=res.status,
                        seconds=round(secs, 1), notes=notes))
        settle(rows[-1])
        print(f"{name}: {res.status} in {secs:.0f}s; {holds}: {why}", file=sys.stderr, flush=True)
    return rows


# --- privacy rows from existing result files ---------------------------------------------------------


def _check_metrics(path: Path) -> dict[str, dict]:
    d = json.loads(path.read_text())
    return {m["name"]: m for m in d["checks"][0]["metrics"]}


def _speedup(m: dict[str, dict], method: str) -> float:
    """Retrain's unlearning seconds over ``method``'s (NaN when either is missing)."""
    rt, me = _fig(m, "unlearn_seconds.retrain").value, _fig(m, f"unlearn_seconds.{method}").value
    return rt / me if rt and me else math.nan


def privacy_rows(results: Path = RESULTS) -> list[Row]:
    """TALLRec / APA / E2URec / PPLR rows from the unlearning and federated JSONs already committed."""
    rows: list[Row] = []
    paper = results / "unlearning_paper_setting_h100.json"  # benchmarks/unlearning_paper_setting.sh, shared init
    gpu = results / "unlearning_ml100k_full_h100_batched_apa.json"
    cpu = results / "unlearning_ml100k.json"
    src = next(f for f in (paper, gpu, cpu) if f.exists())
    m = _check_metrics(src)
    where = {paper: "H100, 843 users (+100 never-seen), <= 5 samples per user (3,372 training samples), LoRA r=8 "
                    "on q/v of all 30 blocks, 1 epoch, shared LoRA init",
             gpu: "H100, all 943 users, 6,744 TALLRec samples, LoRA r=8 on all 30 blocks, 1 epoch (per-shard inits)",
             cpu: "CPU, 40 users, LoRA on 2 blocks"}[src]
    proto = f"TALLRec-style LoRA on SmolLM2-135M (demo model), MovieLens 100K, {where}; 20 users forgotten"
    f = lambda n: _fig(m, n)  # noqa: E731
    auc = f("auc.test.retrain")
    rows.append(Row(
        check="tallrec (base of unlearning)", paper="TALLRec, Bao et al. RecSys'23",
        claim="a LoRA-tuned LLM answering Yes/No learns the user's preference: AUC well above 0.5 (and above zero-shot)",
        protocol=proto, figures=[auc, f("auc.test.original")],
        holds="holds" if (auc.value or 0) > 0.55 else "cannot tell",
        why=f"test AUC {auc.value:.3g} > 0.5 (no CI stored for AUC)", source=f"results/{src.name}"))
    d, nd, rt = f("auc.test.apa_d"), f("auc.test.apa_nd"), f("auc.test.retrain")
    ex = f("apa.exact_retrained_shards")
    ok_nd = nd.value is not None and rt.value is not None and rt.value - nd.value < 0.02
    ok_d = d.value is not None and rt.value is not None and rt.value - d.value < 0.02
    rows.append(Row(
        check="unlearning: APA", paper="APA, Hu et al. SIGIR'24",
        claim="exact unlearning at retraining's AUC: APA(D) 0.7171 / APA(ND) 0.7172 vs retrain 0.7428 (ML), "
              "faster to unlearn than retraining, one model call at inference",
        protocol=proto + "; K=4 semantic shards, top-2 aggregation",
        figures=[rt, d, nd, ex, f("unlearn_seconds.retrain"), f("unlearn_seconds.apa_nd"), f("inference_ms.apa_nd"),
                 f("inference_ms.sisa")],
        holds=("holds for APA(ND); does not hold for APA(D) in this file" if ok_nd and not ok_d else
               ("holds" if ok_nd and ok_d else "does not hold"))
              + ("" if not (ok_nd and _speedup(m, "apa_nd") < 1.2) else
                 " (AUC, exactness, one call at inference); not faster to unlearn here"),
        why=(f"APA(ND) {nd.value:.3g} and APA(D) {d.value:.3g} vs retrain {rt.value:.3g} "
             + ("(shared LoRA init: D within 0.01 of ND, as the paper's 0.7171 vs 0.7172)" if src == paper else
                "(per-shard inits: predates the shared-init fix)")
             + "; shards bit-exact; one model call at inference (SISA: K); little unlearning speed-up here because "
             "the 20 forgotten users fall in all 4 shards"),
        source=f"results/{src.name}"))
    e, js = f("auc.test.e2urec"), f("js_to_retrain.forget.e2urec")
    te, tr = f("unlearn_seconds.e2urec"), f("unlearn_seconds.retrain")
    speed = (tr.value / te.value) if te.value and tr.value else None
    rows.append(Row(
        check="unlearning: E2URec", paper="E2URec, Wang et al. 2024",
        claim="unlearning with LoRA and two teachers keeps retrain-level utility at a fraction of retraining's time",
        protocol=proto, figures=[e, rt, js, te, tr, f("mia.advantage.e2urec"), f("mia.advantage.retrain")],
        holds="holds" if (e.value and rt.value and rt.value - e.value < 0.02 and speed and speed > 2) else "cannot tell",
        why=(f"test AUC {e.value:.3g} vs retrain {rt.value:.3g}, {speed:.1f}× faster; MIA advantage CIs overlap "
             "retraining's (the attack cannot tell forgotten from never-seen users here)"),
        source=f"results/{src.name}"))
    fed_gpu = results / "federated_pplr_vs_fedavg_h100.json"
    if fed_gpu.exists():
        g = json.loads(fed_gpu.read_text())
        sp = g["auc_spread"]
        pp, fa = g["runs"]["pplr"]["summary"], g["runs"]["fedavg"]["summary"]
        tests = [c["n_test"] for c in g["federation"]["clients"]]
        figs = [Figure("pplr auc.mean", _num(sp["pplr"]["mean"])), Figure("pplr auc.std", _num(sp["pplr"]["std"])),
                Figure("fedavg auc.mean", _num(sp["fedavg"]["mean"])), Figure("fedavg auc.std", _num(sp["fedavg"]["std"])),
                Figure("zero-shot auc.mean", _num(g["zero_shot_auc"]["mean"])),
                Figure("pplr params.client_model_share", _num(pp.get("params.client_model_share"))),
                Figure("pplr bytes.up_per_round", _num(pp.get("bytes.up_per_round"))),
                Figure("fedavg bytes.up_per_round", _num(fa.get("bytes.up_per_round")))]
        rows.append(Row(
            check="federated: PPLR", paper="PPLR, Zhao et al. 2024",
            claim="dynamic balance narrows the per-client performance gap vs FedAvg; flexible allocation keeps "
                  "private layers on the client and cuts what crosses the wire",
            protocol=(f"Flower simulation on one H100, {g['federation']['n_clients']} non-IID clients (genre Dirichlet "
                      f"0.5), {g['settings']['num_rounds']} rounds, SmolLM2-135M TALLRec LoRA (demo); "
                      f"{min(tests)}-{max(tests)} test samples per client"),
            figures=figs,
            holds="cannot tell (balance); holds (allocation: 26% of the model on the client, fewer bytes up)",
            why=(f"per-client AUC std {sp['pplr']['std']:.3f} (PPLR) vs {sp['fedavg']['std']:.3f} (FedAvg), means "
                 f"{sp['pplr']['mean']:.3f} / {sp['fedavg']['mean']:.3f}, both near zero-shot "
                 f"{g['zero_shot_auc']['mean']:.3f}: with 2-30 test samples per client and 3 rounds the spread is noise"),
            source="results/federated_pplr_vs_fedavg_h100.json (benchmarks/federated.py simulate --device cuda "
                   "--clients 12 --users-per-client 8 --rounds 3 --strategies fedavg,pplr --no-central)"))
    fed = results / "federated.json"
    if fed.exists() and not fed_gpu.exists():
        s = json.loads(fed.read_text())["simulation"]
        runs = s["runs"]
        pp, fa = runs.get("pplr", {}).get("summary", {}), runs.get("fedavg", {}).get("summary", {})
        figs = [Figure("pplr auc.mean", _num(pp.get("auc.mean"))), Figure("pplr auc.std", _num(pp.get("auc.std"))),
                Figure("fedavg auc.mean", _num(fa.get("auc.mean"))), Figure("fedavg auc.std", _num(fa.get("auc.std"))),
                Figure("centralised auc", _num(s.get("centralised_auc") if not isinstance(s.get("centralised_auc"), dict)
                                               else s["centralised_auc"].get("auc"))),
                Figure("pplr bytes.up_per_round", _num(pp.get("bytes.up_per_round"))),
                Figure("fedavg bytes.up_per_round", _num(fa.get("bytes.up_per_round")))]
        n_clients = s.get("federation", {}).get("n_clients")
        rounds = s.get("settings", {}).get("num_rounds")
        same = pp.get("auc.std") == fa.get("auc.std")
        rows.append(Row(
            check="federated: PPLR", paper="PPLR, Zhao et al. 2024",
            claim="dynamic balance narrows the per-client performance gap vs FedAvg; flexible allocation keeps "
                  "private layers on the client and cuts what crosses the wire",
            protocol=f"Flower simulation, {n_clients} clients, {rounds} rounds, SmolLM2-135M TALLRec LoRA (demo), CPU",
            figures=figs,
            holds="cannot tell (balance); holds (allocation: fewer bytes up)" if same else "see figures",
            why=("PPLR and FedAvg have identical per-client AUC spread at 3 clients × 2 rounds: the sample cannot "
                 "show the balance effect; the private layers do reduce upload bytes"),
            source="results/federated.json (benchmarks/federated.py simulate --clients 3); GPU run "
                   "`federated.py simulate --device cuda --clients 12` pending"))
    full = results / "fairllm_full_audit_h100.json"
    if full.exists():
        a = json.loads(full.read_text())
        km, cov = a["key_metrics"], a["coverage"]
        head = km.get("snsr.prag@20.max", {})
        figs = [Figure("snsr.prag@20.max", _num(head.get("value")), _num(head.get("ci_low")), _num(head.get("ci_high")),
                       p=_num(head.get("p_adj"))),
                Figure("usable answers", float(cov["usable"]), n=cov["requested"])]
        rows.append(Row(
            check="fairllm (full benchmark)", paper="FaiRLLM, Zhang et al. RecSys'23",
            claim="as above, at the paper's size", protocol=("500 names × 2 domains × 32 prompts = 32,000 answers, K=20, "
                                                             "SmolLM2-135M on one H100 through `recaudit audit`"),
            figures=figs, holds="cannot tell",
            why=(f"{cov['usable']} of {cov['requested']} answers usable (SmolLM2-135M never writes a full 20-title list); "
                 "the run only times the machinery (cold 142.5 s, warm 4.45 s)"),
            source="results/fairllm_full_audit_h100.json (benchmarks/fairllm_full_audit.py)"))
    return rows


# --- table ----------------------------------------------------------------------------------------


def markdown(rows: list[Row]) -> str:
    """The reproduction table as markdown (one line per row; figures joined by <br>)."""
    out = ["| check | paper's claim | protocol here | recaudit's figure (95% CI, p) | direction holds? | source |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        figs = "<br>".join(fmt(f) for f in r.figures) or "—"
        cell = lambda s: s.replace("|", "\\|")  # noqa: E731
        out.append(f"| {cell(r.check)} ({cell(r.paper)}) | {cell(r.claim)} | {cell(r.protocol)} | {cell(figs)} | "
                   f"**{cell(r.holds)}**: {cell(r.why)} | `{cell(r.source)}` |")
    return "\n".join(out)


def rows_from_json(path: Path) -> list[Row]:
    """Rows back from a written reproduction.json."""
    d = json.loads(path.read_text())
    return [Row(**{**r, "figures": [Figure(**f) for f in r["figures"]]}) for r in d["rows"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="MovieLens 100K folder (u.data, u.item, u.user)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--scale", choices=sorted(SCALES), default="default")
    ap.add_argument("--checks", default="", help="comma-separated subset of the user/item-side checks")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    ap.add_argument("--refresh-files", action="store_true",
                    help="keep --out's check rows, rebuild the rows read from result files, print the table")
    args = ap.parse_args(argv)
    if args.table:
        if not args.out.exists():
            print(f"error: {args.out} does not exist; run the benchmark first", file=sys.stderr)
            return 2
        print(markdown(rows_from_json(args.out)))
        return 0
    if args.refresh_files:
        if not args.out.exists():
            print(f"error: {args.out} does not exist; run the benchmark first", file=sys.stderr)
            return 2
        payload = json.loads(args.out.read_text())
        kept = [r for r in rows_from_json(args.out) if not r.source.startswith("results/")
                and r.check != "fairllm (full benchmark)"]
        payload["rows"] = [asdict(r) for r in kept + privacy_rows()]
        args.out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
        print(markdown(rows_from_json(args.out)))
        return 0
    if args.data is None or not (args.data / "u.data").exists():
        print("error: --data must name a MovieLens 100K folder holding u.data", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    only = [c for c in args.checks.split(",") if c] or None
    rows = run_checks(args.data, args.scale, only, args.threads) + privacy_rows()
    payload = {
        "benchmark": "reproduction table (issue 18)",
        "command": COMMAND + (f" --scale {args.scale}" if args.scale != "default" else ""),
        "model": DEMO,
        "data": "MovieLens 100K (GroupLens)",
        "scale": args.scale,
        "params": SCALES[args.scale],
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_1m": os.getloadavg()[0]},
        "rows": [asdict(r) for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
