"""A re-run whose checks are all finished never loads the local model (warm audits in seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recaudit.audits.config import parse_config
from recaudit.audits.runner import Runner, SetupError


def _config(tmp_path: Path, model: Path, checks: list[dict] | None = None):
    raw = {
        "name": "reuse", "plugins": ["test_audit_support"], "output_dir": "run",
        "adapter": {"kind": "hf", "path": str(model), "device": "cpu"},
        "checks": checks or [{"check": "t_length", "params": {"n": 2}, "thresholds": ["length.mean <= 1000"]}],
    }
    return parse_config(raw, base_dir=tmp_path)


def _forbid_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self):
        raise AssertionError("the model was built although every check was finished")

    monkeypatch.setattr(Runner, "_build_adapter", fail)


def test_finished_run_is_rejudged_without_loading_the_model(tmp_path, tiny_lm_path, monkeypatch):
    cold = Runner(_config(tmp_path, tiny_lm_path), progress=False).run()
    assert cold.computed == ["t_length"] and cold.exit_code == 0
    _forbid_building(monkeypatch)
    # a changed threshold is re-judged on the finished result, still without the model
    warm = Runner(_config(tmp_path, tiny_lm_path, [
        {"check": "t_length", "params": {"n": 2}, "thresholds": ["length.mean <= 0"]}]), progress=False).run()
    assert warm.reused == ["t_length"] and warm.computed == []
    assert warm.exit_code == 1  # the breach is judged on the reused metric
    assert warm.results.checks[0].metric("length.mean").value == cold.results.checks[0].metric("length.mean").value
    # the fingerprint the check recorded when it ran (resolved device, dtype) is what results carry
    assert warm.results.reproducibility.adapter_fingerprint == cold.results.reproducibility.adapter_fingerprint
    assert warm.results.reproducibility.adapter_fingerprint["device"] == "cpu"


def test_changed_weights_or_a_new_check_or_fresh_load_the_model(tmp_path, tiny_lm_path, monkeypatch):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_lm_path, model)
    Runner(_config(tmp_path, model), progress=False).run()
    built = []
    original = Runner._build_adapter

    def counting(self):
        built.append(1)
        return original(self)

    monkeypatch.setattr(Runner, "_build_adapter", counting)
    Runner(_config(tmp_path, model), progress=False).run()
    assert built == []
    Runner(_config(tmp_path, model), progress=False, fresh=True).run()
    assert built == [1]
    # one more check that never ran: the model is needed
    more = [{"check": "t_length", "params": {"n": 2}}, {"check": "t_length", "name": "other", "params": {"n": 3}}]
    run = Runner(_config(tmp_path, model, more), progress=False).run()
    assert built == [1, 1] and run.reused == ["t_length"] and run.computed == ["other"]
    # other weights under the same path: nothing is reused
    weights = next(p for p in sorted(model.iterdir()) if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    run = Runner(_config(tmp_path, model, more), progress=False).run()
    assert built == [1, 1, 1] and sorted(run.computed) == ["other", "t_length"]


def test_unloadable_model_is_still_one_setup_line_with_nothing_written(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # exists, so it has an identity, but cannot load
    with pytest.raises(SetupError, match="could not load"):
        Runner(_config(tmp_path, model), progress=False).run()
    assert not (tmp_path / "run").exists()
