"""benchmarks/reproduction.py's table building on stub metrics (no model)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repro():
    spec = importlib.util.spec_from_file_location("reproduction", ROOT / "benchmarks" / "reproduction.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["reproduction"] = mod  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("reproduction", None)


def _m(value, lo=None, hi=None, p=None, n=10):
    return {"value": value, "ci_low": lo, "ci_high": hi, "p_value": p, "n": n, "variant": None}


def test_sign_verdict_three_ways(repro):
    F = repro.Figure
    assert repro.sign_verdict(F("x", 0.2, 0.05, 0.3, p=0.01))[0] == "holds"
    assert repro.sign_verdict(F("x", -0.2, -0.3, -0.05))[0] == "does not hold"
    assert repro.sign_verdict(F("x", 0.1, -0.05, 0.3, p=0.3))[0] == "cannot tell"
    # a CI above 0 with a non-significant test is not a "holds"
    assert repro.sign_verdict(F("x", 0.1, 0.01, 0.3, p=0.2))[0] == "cannot tell"
    assert repro.sign_verdict(F("x", None))[0] == "cannot tell"


def test_shilling_harmful_attack_is_does_not_hold(repro):
    p = {"attacks": ["trivial"], "defenses": ["spell"]}
    metrics = {"exposure.clean.pyes": _m(0.3, 0.2, 0.4),
               "exposure.lift.trivial.pyes": _m(-0.2, -0.3, -0.1, p=0.99)}
    _, holds, _ = repro.row_shilling(metrics, p)
    assert holds == "does not hold"
    metrics["exposure.lift.trivial.pyes"] = _m(0.2, 0.1, 0.3, p=0.01)
    assert repro.row_shilling(metrics, p)[1] == "holds"


def test_item_row_reads_the_most_popular_bucket(repro):
    # b0 is the least popular bucket: a positive b0 must not make the claim hold
    metrics = {"gu.popularity.b0": _m(0.3, 0.2, 0.4), "gu.popularity.b4": _m(-0.3, -0.4, -0.2, p=0.001)}
    assert repro.row_item(metrics, {})[1] == "does not hold"


def test_fairllm_row_uses_permutation_p(repro):
    p = {"k": 10, "n_names": 5}
    sig = {"snsr.prag@10.max": _m(0.4, 0.1, 0.6, p=0.004)}
    assert repro.row_fairllm(sig, p)[1] == "holds"
    null = {"snsr.prag@10.max": _m(0.4, 0.1, 0.6, p=0.4)}
    assert repro.row_fairllm(null, p)[1] == "cannot tell"


def test_markdown_round_trip(repro, tmp_path):
    rows = [repro.Row(check="a|b", paper="P", claim="c", protocol="q", figures=[repro.Figure("m", 0.5, 0.1, 0.9, 0.02, 7)],
                      holds="holds", why="w", source="cmd")]
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"rows": [repro.asdict(r) for r in rows]}))
    table = repro.markdown(repro.rows_from_json(out))
    lines = table.splitlines()
    assert len(lines) == 3 and lines[2].count(" | ") == 5  # the escaped | does not add a column
    assert "m = 0.5 [0.1, 0.9], p = 0.02 (n=7)" in table


def test_privacy_rows_from_committed_results(repro):
    rows = {r.check: r for r in repro.privacy_rows()}
    apa = rows["unlearning: APA"]
    # committed H100 paper-setting file: retrain 0.7237, APA(D) 0.7057, APA(ND) 0.7045 (both within 0.02),
    # unlearning 28.85 s vs retrain's 29.07 s (1.01x: not the paper's speed-up)
    assert apa.source == "results/unlearning_paper_setting_h100.json"
    assert apa.holds == "holds (AUC, exactness, one call at inference); not faster to unlearn here"
    full = rows["fairllm (full benchmark)"]
    assert full.holds == "cannot tell" and full.why.startswith("0 of 32000 answers usable")
    pplr = rows["federated: PPLR"]
    assert pplr.holds.startswith("cannot tell (balance)") and "0.220 (PPLR) vs 0.229 (FedAvg)" in pplr.why


def test_incomplete_check_cannot_tell(repro):
    row = repro.Row(check="exposure", paper="P", claim="c", protocol="q", figures=[], holds="does not hold",
                    why="w", source="cmd", status="incomplete", notes=["status incomplete", "0/3 usable"])
    assert repro.settle(row).holds == "cannot tell" and "0/3 usable" in row.why
    ok = repro.Row(check="x", paper="P", claim="c", protocol="q", figures=[], holds="holds", why="w", source="cmd",
                   status="not_judged")
    assert repro.settle(ok).holds == "holds"
