"""Validity of the user-side fairness tests: power, family-wise false flags and interval coverage.

Planted and null recommenders (CallableAdapter) run through ``Probe.run`` of fairllm and
implicit_names:
- fairllm power: one value's lists have 20% of their titles swapped for others (a "20% planted
  swap") on top of value-independent noise; flagged = Holm-adjusted p of that attribute < 0.05;
- fairllm FWER: lists independent of the value; flagged = any attribute's p_adj < 0.05 (one
  metric's family) or the max headline's p < 0.05;
- fairllm coverage: Student-t intervals of Sim(a) (notebook Jaccard and PRAG) against the
  population mean of the generator (estimated from 20,000 direct draws);
- FaiRLLM's sample is 500 names per domain; for implicit_names 50 names per gender per locale
  (200 users) stands in for the study's (its per-group counts are not published);
- implicit_names power / FWER: female names get 20% of their items moved to another category
  (name-only prompts) and 20% of their relevant items swapped for irrelevant ones (interest
  prompts); flagged = Holm p_adj over every implicit test of the check < 0.05; null: names ignored.
  The earlier planting (``legacy``) removed only 11.7% of women's relevant items: its U-NDCG
  power 0.80 measured a smaller effect than the 20% it was named for (kept as a row).
Run: ``PYTHONPATH=. python benchmarks/validity_userfair.py [--quick]`` → benchmarks/results/validity_userfair.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
import zlib
from pathlib import Path

import numpy as np
from scipy import stats as sps

from recaudit.adapters.callable import CallableAdapter
from recaudit.checks import CheckContext
from recaudit.metrics.list_similarity import list_similarity
from recaudit.probes.fairllm import FairLLMProbe
from recaudit.probes.implicit_names import ImplicitNamesProbe

PROMPT = re.compile(r"^I am (?P<value>.*) fan of (?P<name>.*?)\. Please provide me with a list of (?P<k>\d+) ")
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
         "romeo sierra tango uniform victor whiskey xray yankee zulu").split()
NOISE_SWAPS = 2  # value-independent noise: titles replaced in every list, neutral included
K = 10


def _rng(*parts) -> random.Random:
    return random.Random(zlib.crc32("|".join(map(str, parts)).encode()))


def _numbered(titles) -> str:
    return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, start=1))


def fair_list(name: str, rng: random.Random, k: int = K, swap: float = 0.0) -> list[str]:
    """The name's base list with NOISE_SWAPS random replacements, plus a share ``swap`` of extra ones."""
    titles = [f"{name} hit {w}" for w in WORDS[:k]]
    n_swap = NOISE_SWAPS + int(round(swap * k))
    for pos in rng.sample(range(k), min(k, n_swap)):
        # letters, not digits: the notebook's parser splits on "<digits>. " after joining lines
        titles[pos] = f"{name} other {''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(8))}"
    return titles


def fairllm_recommender(seed: int, target: str | None = None, swap: float = 0.2):
    """Lists independent of the value, except ``target``'s (``swap`` more titles replaced)."""

    def generate(request) -> str:
        m = PROMPT.match(request.user_text)
        rng = _rng(seed, request.user_text)
        return _numbered(fair_list(m["name"], rng, int(m["k"]), swap if m["value"] == target else 0.0))

    return generate


def fairllm_probe(n: int, seed: int, attributes=("gender", "religion"), **extra) -> FairLLMProbe:
    names = [f"Artist {i:03d}" for i in range(n)]
    params = dict(domains=["music"], names={"music": names}, n_names=n, attributes=list(attributes), k=K,
                  n_bootstrap=0, n_permutations=500, metrics=["prag"], figure_metric="prag", seed=seed)
    params.update(extra)
    return FairLLMProbe(params)


def fairllm_power(n: int, seeds: int, swap: float = 0.2) -> dict:
    hits = []
    for s in range(seeds):
        res = fairllm_probe(n, s).run(CheckContext(adapter=CallableAdapter(fairllm_recommender(s, "a female", swap))))
        hits.append(res.metric(f"snsr.prag@{K}.gender").p_adj < 0.05)
    return dict(n_instructions=n, swap=swap, seeds=seeds, power=float(np.mean(hits)))


def fairllm_fwer(n: int, seeds: int) -> dict:
    any_attr, headline = [], []
    for s in range(seeds):
        res = fairllm_probe(n, 1000 + s, attributes=("gender", "religion", "race", "age")).run(
            CheckContext(adapter=CallableAdapter(fairllm_recommender(1000 + s))))
        adj = [m.p_adj for m in res.metrics if m.name.startswith(f"snsr.prag@{K}.") and m.p_adj is not None]
        any_attr.append(min(adj) < 0.05)
        headline.append(res.metric(f"snsr.prag@{K}.max").p_value < 0.05)
    return dict(n_instructions=n, seeds=seeds, family="4 attributes, Holm", fwer_holm=float(np.mean(any_attr)),
                fwer_headline=float(np.mean(headline)), ci95_holm=_cp(sum(any_attr), seeds))


def fairllm_spread_coverage(n: int, runs: int, planted: bool = True, n_draws: int = 5000, method: str = "basic") -> dict:
    """Share of SNSR (range) and SNSV (std) bootstrap intervals covering the population SNSR/SNSV of the
    generator: planted (values with 0, 10%, 30%, 0 extra swaps) or null (no value differs: truth 0)."""
    swaps = {"a boy": 0.0, "a female": 0.1, "a girl": 0.3, "a male": 0.0} if planted else \
        {"a boy": 0.0, "a female": 0.0, "a girl": 0.0, "a male": 0.0}
    if planted:
        truth_sims = _population_sims(swaps, n_draws)
        pop = {m: np.array([truth_sims[(v, m)] for v in swaps]) for m in ("jaccard", "prag")}
        truth = {(m, "snsr"): float(np.ptp(pop[m])) for m in pop} | {(m, "snsv"): float(pop[m].std()) for m in pop}
    else:
        truth = {(m, s): 0.0 for m in ("jaccard", "prag") for s in ("snsr", "snsv")}
    hits: dict[str, list[bool]] = {f"{s}.{m}": [] for m, s in truth}

    def generate_for(seed):
        def generate(request):
            m = PROMPT.match(request.user_text)
            return _numbered(fair_list(m["name"], _rng(seed, request.user_text), K, swaps.get(m["value"], 0.0)))
        return generate

    for r in range(runs):
        probe = fairllm_probe(n, r, attributes=("gender",), metrics=["jaccard", "prag"], n_permutations=0,
                              n_bootstrap=500, snsr_ci_method=method)
        res = probe.run(CheckContext(adapter=CallableAdapter(generate_for(7000 + r))))
        for (metric, stat), t in truth.items():
            mv = res.metric(f"{stat}.{metric}@{K}.gender")
            hits[f"{stat}.{metric}"].append(mv.ci_low - 1e-12 <= t <= mv.ci_high + 1e-12)
    return dict(n_instructions=n, runs=runs, planted=planted, method=f"bootstrap-{method}",
                truth={f"{s}.{m}": v for (m, s), v in truth.items()},
                coverage={k: float(np.mean(v)) for k, v in hits.items()},
                ci95={k: _cp(int(np.sum(v)), len(v)) for k, v in hits.items()})


def _population_sims(swap_by_value: dict[str, float], n_draws: int = 20000) -> dict[tuple[str, str], float]:
    """Population Sim(a)@K of the generator (notebook variant), from direct draws."""
    out = {}
    for value, swap in swap_by_value.items():
        for metric in ("jaccard", "prag"):
            vals = []
            for d in range(n_draws):
                rng = random.Random(d)
                neutral = fair_list("X", rng)
                sens = fair_list("X", rng, swap=swap)
                vals.append(list_similarity(metric, [t.lower() for t in sens], [t.lower() for t in neutral], K,
                                            "fairllm-notebook"))
            out[(value, metric)] = float(np.mean(vals))
    return out


def fairllm_coverage(n: int, runs: int, n_draws: int = 20000) -> dict:
    """Share of Sim(a) t intervals covering the population value (values with 0, 10%, 30% extra swaps)."""
    swaps = {"a boy": 0.0, "a female": 0.1, "a girl": 0.3, "a male": 0.0}
    truth = _population_sims(swaps, n_draws)
    covered = {m: [] for m in ("jaccard", "prag")}

    def generate_for(seed):
        def generate(request):
            m = PROMPT.match(request.user_text)
            rng = _rng(seed, request.user_text)
            return _numbered(fair_list(m["name"], rng, K, swaps.get(m["value"], 0.0)))
        return generate

    for r in range(runs):
        probe = fairllm_probe(n, r, attributes=("gender",), metrics=["jaccard", "prag"], n_permutations=0)
        res = probe.run(CheckContext(adapter=CallableAdapter(generate_for(5000 + r))))
        for value in swaps:
            for metric in covered:
                mv = res.metric(f"sim.{metric}@{K}.gender.{value.replace(' ', '_')}")
                covered[metric].append(mv.ci_low - 1e-12 <= truth[(value, metric)] <= mv.ci_high + 1e-12)
    return dict(n_instructions=n, runs=runs, method="t",
                coverage={m: float(np.mean(v)) for m, v in covered.items()},
                ci95={m: _cp(int(np.sum(v)), len(v)) for m, v in covered.items()})


# --- implicit_names --------------------------------------------------------------------------------

CATS = {"sports": "football", "finance": "stock market", "health": "doctor", "travel": "vacation",
        "lifestyle": "fashion", "autos": "car"}
BASE = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1])


def implicit_recommender(seed: int, gender_of: dict[str, str], swap: float = 0.0, legacy: bool = False):
    """Headlines whose categories ignore the name, except for women: ``swap`` of their name-only items
    moved to lifestyle, and ``swap`` of their relevant items on interest prompts swapped for others.

    ``legacy``: the earlier planted effect (women's interest-following rate 0.6 → 0.6·(1 − swap),
    the rest drawn at base rates, which re-adds relevant items): a 20% "swap" then removes only
    11.7% of women's relevant items (0.72 → 0.636 for sports), weaker than its name.
    """
    cats = list(CATS)
    interest_re = re.compile(r"reads news about (?P<interest>\w+)")
    name_re = re.compile(r"user named (?P<name>[^.,]+?)(?: mostly|\. |$)")

    def generate(request) -> str:
        text = request.user_text
        name = name_re.search(text)["name"].strip()
        female = gender_of.get(name) == "female"
        rng = np.random.default_rng(zlib.crc32(f"{seed}|{text}".encode()))
        interest = interest_re.search(text)
        lines = []
        for i in range(1, 6):
            if interest and legacy:
                hit = rng.random() < 0.6 * ((1 - swap) if female else 1.0)
                c = interest["interest"] if hit else cats[rng.choice(len(cats), p=BASE)]
            elif interest:
                c = interest["interest"] if rng.random() < 0.6 else cats[rng.choice(len(cats), p=BASE)]
                if female and c == interest["interest"] and rng.random() < swap:  # a relevant item swapped out
                    others = [x for x in cats if x != c]
                    c = others[rng.integers(len(others))]
            else:
                c = cats[rng.choice(len(cats), p=BASE)]
                if female and rng.random() < swap:
                    c = "lifestyle"
            tag = "".join(chr(97 + int(x)) for x in rng.integers(0, 26, 6))
            lines.append(f"{i}. {CATS[c].title()} headline {tag}")
        return "\n".join(lines)

    return generate


def implicit_probe(n_names: int, seed: int, n_permutations: int = 2000) -> ImplicitNamesProbe:
    return ImplicitNamesProbe(dict(domains=["news"], locales=["en_US", "yo_NG"], conditions=["implicit"], k=5,
                                   n_names=n_names, n_bootstrap=0, n_permutations=n_permutations, category_method="keyword",
                                   seed=seed))


def implicit_power(n_names: int, seeds: int, swap: float = 0.2, legacy: bool = False) -> dict:
    """Share of seeds whose Holm-adjusted p (the check's family) of the gender JS / U-NDCG test is < 0.05."""
    js, ndcg = [], []
    for s in range(seeds):
        probe = implicit_probe(n_names, s)
        gender_of = {u.name: u.gender for u in probe.users()}
        res = probe.run(CheckContext(adapter=CallableAdapter(implicit_recommender(s, gender_of, swap, legacy))))
        js.append(res.metric("implicit.js.gender.news").p_adj < 0.05)
        ndcg.append(res.metric("implicit.u_ndcg@5.gender.news").p_adj < 0.05)
    return dict(n_names_per_gender_per_locale=n_names, swap=swap, seeds=seeds, legacy_planting=legacy,
                family=res.metric("implicit.u_ndcg@5.gender.news").p_adj_method,
                power_js=float(np.mean(js)), power_u_ndcg=float(np.mean(ndcg)), ci95_u_ndcg=_cp(sum(ndcg), seeds))


def relevant_share_removed(swap: float = 0.2, legacy: bool = False, n: int = 4000) -> float:
    """1 − (women's relevant-item rate / men's) on interest prompts: the effect actually planted."""
    gen = implicit_recommender(0, {"Ann": "female", "Bob": "male"}, swap, legacy)
    rate = {}
    for who in ("Ann", "Bob"):
        hits = 0
        for i in range(n):
            text = gen(type("R", (), {"user_text": f"The user named {who} mostly reads news about sports. #{i}"})())
            hits += text.count("Football")
        rate[who] = hits / (5 * n)
    return float(1 - rate["Ann"] / rate["Bob"])


def implicit_fwer(n_names: int, seeds: int) -> dict:
    """Null recommender: share of seeds with any implicit test's Holm p_adj < 0.05 (and per measure)."""
    flags, per = [], {m: [] for m in ("js", "tv", "u_ndcg@5", "u_mrr@5")}
    for s in range(seeds):
        probe = implicit_probe(n_names, 2000 + s, n_permutations=1000)
        gender_of = {u.name: u.gender for u in probe.users()}
        res = probe.run(CheckContext(adapter=CallableAdapter(implicit_recommender(2000 + s, gender_of))))
        tested = [m for m in res.metrics if m.name.startswith("implicit.") and m.p_adj is not None]
        flags.append(min(m.p_adj for m in tested) < 0.05)
        for meas, hits in per.items():
            hits.append(min(m.p_adj for m in tested if m.name.split(".")[1] == meas) < 0.05)
    return dict(n_names_per_gender_per_locale=n_names, seeds=seeds, family=tested[0].p_adj_method,
                fwer=float(np.mean(flags)), ci95=_cp(sum(flags), seeds),
                false_flag_rate_by_measure={m: float(np.mean(v)) for m, v in per.items()})


def _cp(k: int, n: int) -> list[float]:
    """Clopper–Pearson 95% interval of a proportion."""
    ci = sps.binomtest(int(k), int(n)).proportion_ci(0.95)
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def implicit_block(quick: bool) -> dict:
    """The implicit_names rows (``--only implicit`` reruns just these)."""
    if quick:
        return dict(implicit_power=implicit_power(10, 5), implicit_fwer=implicit_fwer(4, 10))
    return dict(
        implicit_power=implicit_power(50, 100), implicit_power_10=implicit_power(10, 20),
        implicit_power_legacy_planting=implicit_power(50, 100, legacy=True),
        implicit_planted_effect=dict(relevant_share_removed=relevant_share_removed(),
                                     relevant_share_removed_legacy=relevant_share_removed(legacy=True)),
        implicit_fwer=implicit_fwer(4, 400),
    )


def run(quick: bool, only: str | None = None, previous: dict | None = None) -> dict:
    t0 = time.time()
    if only == "implicit":
        out = {k: v for k, v in (previous or {}).items() if not k.startswith("implicit")}
        out.update(implicit_block(quick))
    elif quick:
        out = dict(
            fairllm_power=fairllm_power(20, 5), fairllm_fwer=fairllm_fwer(10, 10),
            fairllm_coverage=fairllm_coverage(10, 20, 2000),
            fairllm_spread_coverage=fairllm_spread_coverage(10, 5, True, 1000), **implicit_block(quick),
        )
    else:
        out = dict(
            fairllm_power=fairllm_power(500, 20), fairllm_power_20=fairllm_power(20, 20),
            fairllm_fwer=fairllm_fwer(10, 60),
            fairllm_coverage=fairllm_coverage(10, 200), fairllm_coverage_5=fairllm_coverage(5, 200),
            fairllm_spread_coverage=[fairllm_spread_coverage(n, 80, planted) for n in (10, 20) for planted in (True, False)],
            **implicit_block(quick),
        )
    out[f"seconds{'_' + only if only else ''}"] = round(time.time() - t0, 1)
    out["quick"] = quick
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["implicit"], help="rerun only these rows; the others are kept from --out")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "validity_userfair.json"))
    args = ap.parse_args()
    prev = json.loads(Path(args.out).read_text()) if args.only and Path(args.out).exists() else None
    result = run(args.quick, args.only, prev)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if not args.quick:
        validity = Path(args.out).with_name("validity.json")  # issue 17's one file: a section per script
        merged = json.loads(validity.read_text()) if validity.exists() else {}
        merged["userfair"] = result
        validity.write_text(json.dumps(merged, indent=1) + "\n")
    print(json.dumps(result, indent=1))
