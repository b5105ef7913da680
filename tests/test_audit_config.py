"""Audit config validation: every problem is one line naming its key, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

import test_audit_support  # noqa: F401  (registers the t_* checks)
from recaudit.audits.config import ConfigError, load_config, load_default_config, parse_config
from recaudit.cli import main

CALLABLE = '{kind: callable, generate: "test_audit_support:echo_length"}'


def _write(tmp_path: Path, body: str, adapter: str = CALLABLE) -> Path:
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(f"name: t\nadapter: {adapter}\nplugins: [test_audit_support]\noutput_dir: run\n{body}")
    return cfg


def _audit_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, adapter: str = CALLABLE) -> str:
    cfg = _write(tmp_path, body, adapter)
    rc = main(["audit", str(cfg), "-q"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("recaudit audit: config error:")]
    assert rc == 2
    assert len(lines) == 1, err
    assert not (tmp_path / "run").exists(), "a config error must not leave a half-written run folder"
    return lines[0]


def test_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _audit_error(tmp_path, capsys, "checks:\n  - check: t_length\n    parms: {n: 2}\n")
    assert "checks[0]: unknown key 'parms' (did you mean 'params'?)" in line


def test_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _audit_error(tmp_path, capsys, "seed: abc\nchecks:\n  - check: t_length\n")
    assert "seed: Input should be a valid integer" in line and "'abc'" in line


def test_wrong_param_type_names_the_param(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = "checks:\n  - check: t_length\n  - check: t_length\n    name: second\n    params: {n: many}\n"
    line = _audit_error(tmp_path, capsys, body)
    assert "checks[1].params.n: Input should be a valid integer" in line


def test_missing_adapter_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _audit_error(tmp_path, capsys, "checks:\n  - check: t_length\n", adapter="{kind: hf, path: ./no-such-model}")
    assert "adapter.path: path does not exist" in line and str(tmp_path / "no-such-model") in line


def test_threshold_on_unknown_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = 'checks:\n  - check: t_length\n    thresholds: ["length.mean <= 3", "lenght.mean <= 3"]\n'
    line = _audit_error(tmp_path, capsys, body)
    assert "checks[0].thresholds[1]: unknown metric 'lenght.mean'" in line and "length.mean" in line


def test_unknown_check_suggests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _audit_error(tmp_path, capsys, "checks:\n  - check: t_lenght\n")
    assert "checks[0].check: unknown check 't_lenght' (did you mean 't_length'?)" in line


def test_malformed_threshold_and_bad_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _audit_error(tmp_path, capsys, 'checks:\n  - check: t_length\n    thresholds: ["length.mean =< 3"]\n')
    assert "checks[0].thresholds[0]: cannot parse threshold" in line
    line = _audit_error(tmp_path, capsys, "checks: [\n")
    assert "invalid YAML" in line and "line" in line


def test_missing_data_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"data": {"kind": "movielens-100k", "path": "nowhere"}, "checks": [{"check": "t_length"}]}, base_dir=tmp_path)
    assert e.value.issues == [f"data.path: path does not exist: {tmp_path / 'nowhere'}"]


def test_duplicate_check_names(tmp_path: Path) -> None:
    raw = {"adapter": {"kind": "callable", "generate": "test_audit_support:echo_length"},
           "checks": [{"check": "t_length"}, {"check": "t_fail", "name": "t_length"}]}
    with pytest.raises(ConfigError) as e:
        parse_config(raw, base_dir=tmp_path)
    assert e.value.issues == ["checks[1].name: checks[0] is also named 't_length'; give one a distinct 'name'"]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'checks:\n  - check: nope\n  - check: t_length\n    params: {n: x}\n    thresholds: ["zzz < 1"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert len(e.value.issues) == 2  # params fail first, so the threshold is not judged against an unknown Params
    assert str(e.value).count(str(cfg)) == 2


def test_valid_config_resolves_paths_and_seed(tmp_path: Path) -> None:
    (tmp_path / "cat.csv").write_text("item_id,title\n1,A\n2,B\n")
    cfg = _write(tmp_path, "seed: 7\ndata: {kind: files, catalog: cat.csv}\nchecks:\n  - check: t_length\n    params: {n: 3}\n")
    config = load_config(cfg)
    assert config.data.catalog == tmp_path / "cat.csv"
    assert config.output_dir == tmp_path / "run"
    plan = config.plan()
    assert plan[0].params.seed == 7 and plan[0].params.n == 3  # the audit seed fills an unset check seed


def test_embedded_default_config_is_valid() -> None:
    config = load_default_config()
    assert config.adapter.kind == "default"
    assert config.checks, "the default audit must run at least one check"


def test_threshold_checked_against_the_declared_metrics_of_a_real_check(tmp_path: Path) -> None:
    check = ('checks:\n  - check: fairllm\n    params: {domains: [music], k: 10, metrics: [jaccard], figure_metric: jaccard}\n'
             '    thresholds: ["snsr.jaccard@10.max <= 0.1", "sim.jaccard@10.gender.a_boy.p >= 0.05"]\n')
    assert [t.metric for t in load_config(_write(tmp_path, check)).plan()[0].thresholds] == [
        "snsr.jaccard@10.max", "sim.jaccard@10.gender.a_boy.p"]  # a field of a declared metric
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, check.replace("snsr.jaccard@10.max", "snsr.jaccard@20.max"))).plan()
    assert "checks[0].thresholds[0]: unknown metric 'snsr.jaccard@20.max' for check 'fairllm'" in str(e.value)
    assert "snsr.jaccard@10.max" in str(e.value)  # what it does produce


def test_unknown_metric_of_a_check_with_many_names_lists_the_closest(tmp_path: Path) -> None:
    body = ('checks:\n  - check: exposure\n    params: {strategies: [simple], baselines: [toppop]}\n'
            '    thresholds: ["exposure.gnii.simple.normal <= 0.9"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, body)).plan()
    line = str(e.value)
    assert "unknown metric 'exposure.gnii.simple.normal' for check 'exposure'" in line
    assert "closest: exposure.gini.simple.normal" in line and "baseline.toppop.recall" not in line
