"""`recaudit attack shilling`: the handler end to end on files with a callable adapter."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from recaudit.cli import attack as attack_cli
from recaudit.results import AuditResults
from test_attacks_world import TARGET, planted_score, toy_catalog, toy_interactions

SCORE = planted_score(lambda t: t.endswith("better selling"))


def score(request):
    """Callable adapter score_fn (imported by path from the adapter config)."""
    return SCORE(request)


def generate(request):
    """Callable adapter generate_fn: echoes titles for rewrites, ranks candidates by a planted rule."""
    text = request.user_text
    if "marketing expert" in text:
        return "Smart Tablet Deluxe"
    if "Correct possible" in text:
        return text.split("only): ", 1)[1].replace(" better selling", "")
    cands = re.findall(r"^\d+\. (.*)$", text, re.M)
    return "\n".join(f"{i}. {c}" for i, c in enumerate(sorted(cands, key=lambda c: "better selling" not in c)[:3], 1))


@pytest.fixture()
def files(tmp_path):
    cat, inter = toy_catalog(), toy_interactions()
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("item_id,title\n" + "".join(f"{it.item_id},{it.title}\n" for it in cat), encoding="utf-8")
    interactions = tmp_path / "interactions.csv"
    inter.frame.to_csv(interactions, index=False)
    adapter = tmp_path / "adapter.yaml"
    adapter.write_text(
        "kind: callable\ngenerate: test_attacks_cli:generate\nscore: test_attacks_cli:score\nname: planted\n",
        encoding="utf-8",
    )
    return catalog, interactions, adapter


def _parse(argv):
    parser = argparse.ArgumentParser(prog="recaudit")
    attack_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _argv(files, tmp_path, *extra):
    catalog, interactions, adapter = files
    return [
        "attack", "shilling", "--data", str(catalog), "--interactions", str(interactions), "--adapter-config", str(adapter),
        "--target", TARGET, "--attacks", "trivial,llm_rewrite", "--defenses", "llm_rewrite,spell",
        "--attacker-users", "8", "--eval-users", "24", "--param", "min_user_interactions=5", "--param", "n_bootstrap=200", "--param", "n_candidates=10",
        "--param", "use_wordnet=false", "--out", str(tmp_path / "shilling.json"), "-q", *extra,
    ]


def test_shilling_command_writes_results_and_prints_exposures(files, tmp_path, capsys):
    args = _parse(_argv(files, tmp_path))
    assert args.func(args) == 0
    results = AuditResults.from_json((tmp_path / "shilling.json").read_text(encoding="utf-8"))
    check = results.check("shilling")
    assert check.error is None and check.params["targets"] == [TARGET] and check.params["use_wordnet"] is False
    assert check.metric("exposure.attacked.trivial.pyes").value == 1.0
    assert check.metric("exposure.lift.trivial.pyes").ci_low > 0
    out = capsys.readouterr().out
    assert re.search(r"pyes\s+trivial\s+clean [\d.]+ → attacked 1\.000 \(lift \+", out)
    assert (tmp_path / "shilling.json.run" / "cache.sqlite").exists()  # responses cached for a rerun
    json.loads((tmp_path / "shilling.json").read_text(encoding="utf-8"))


def test_breached_threshold_exits_1_and_bad_input_exits_2(files, tmp_path, capsys):
    args = _parse(_argv(files, tmp_path, "--threshold", "exposure.lift.trivial.pyes <= 0.0"))
    assert args.func(args) == 1
    args = _parse(_argv(files, tmp_path, "--attacks", "deepwordbugg"))
    assert args.func(args) == 2
    assert "deepwordbugg" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not exist"):
        attack_cli.data_spec(str(tmp_path / "missing"), None)
    with pytest.raises(ValueError, match="--interactions"):
        attack_cli.data_spec(str(files[0]), None)


def test_param_pairs_override_flags():
    args = _parse(["attack", "shilling", "--data", "demo", "--out", "x.json", "--attacks", "trivial, puncattack", "-k", "2",
                   "--param", "k=4", "--param", "prompts={promo_phrases: [buy now]}"])
    params = attack_cli.check_params(args)
    assert params["attacks"] == ["trivial", "puncattack"] and params["k"] == 4
    assert params["prompts"] == {"promo_phrases": ["buy now"]}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        attack_cli.check_params(_parse(["attack", "shilling", "--data", "demo", "--out", "x", "--param", "oops"]))


def test_a_held_threshold_is_judged_not_incomplete_when_a_defense_changes_nobody(files, tmp_path):
    # the llm_rewrite attack's "Deluxe" title is left alone by both defenses: its recovery tests change no
    # user (p = 1), yet their floor is the sample's 2^-24, so the held threshold gives a verdict (exit 0, not 3)
    args = _parse(_argv(files, tmp_path, "--threshold", "exposure.lift.trivial.pyes <= 1.0"))
    assert args.func(args) == 0
    check = AuditResults.from_json((tmp_path / "shilling.json").read_text(encoding="utf-8")).check("shilling")
    noop = [m for m in check.metrics if m.name.startswith("exposure.recovery.llm_rewrite.") and m.p_value == 1.0]
    assert noop and all(m.p_floor == pytest.approx(2.0 ** -24) and not m.underpowered for m in noop)


def test_pool_flag_reaches_the_check_and_full_refuses_the_ranking_victim(files, tmp_path, capsys):
    params = attack_cli.check_params(_parse(["attack", "shilling", "--data", "demo", "--out", "x", "--pool", "full"]))
    assert params["pool"] == "full"
    args = _parse(_argv(files, tmp_path, "--pool", "full", "--victims", "pyes,ranking"))
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "ranking victim cannot list" in err and "Traceback" not in err
