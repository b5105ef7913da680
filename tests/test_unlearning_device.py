"""What a long GPU run of ``recaudit unlearn`` relies on: device resolution, deterministic CUDA
settings, trainer progress lines, the partial results file, and (only where CUDA exists) every
method end to end on the GPU with APA's shards bit-exact."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from recaudit.tallrec import TrainConfig, attach_lora, build_samples, load_base_model, reset_lora, train_lora
from recaudit.tallrec.trainer import deterministic_torch, training_progress
from recaudit.unlearning.experiment import run_unlearning
from recaudit.unlearning.runtime import resolve_device, runtime_settings
from test_tallrec_core import toy_data
from unlearning_toys import tiny_params, toy_movielens


@pytest.fixture(scope="module")
def tiny(tiny_lm_path):
    import torch

    torch.set_num_threads(1)
    model, tok = load_base_model(tiny_lm_path)
    return attach_lora(model, TrainConfig(seed=0)), tok


def test_resolve_device_auto_cpu_and_errors(monkeypatch):
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    # set before torch could start cuBLAS, even when "auto" ends on the CPU
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda:0")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    resolve_device("auto")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a user's own setting is kept
    assert runtime_settings("cpu")["device"] == "cpu"


def test_deterministic_torch_pins_math_attention_only_on_cuda():
    import torch

    flags = lambda: (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),  # noqa: E731
                     torch.backends.cuda.math_sdp_enabled())  # fmt: skip
    outside = flags()
    with deterministic_torch(True, torch.device("cuda")):
        assert flags() == (False, False, True)
        assert torch.are_deterministic_algorithms_enabled()
    assert flags() == outside
    with deterministic_torch(True, "cpu"):
        assert flags() == outside
    with deterministic_torch(False, "cuda"):
        assert flags() == outside and not torch.are_deterministic_algorithms_enabled()


def test_training_progress_reports_each_epoch_and_is_silent_outside(tiny):
    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)[:12]
    cfg = TrainConfig(seed=0, batch_size=4, epochs=2, max_length=256)
    lines: list[str] = []
    reset_lora(model, 0)
    with training_progress(lines.append, every_s=3600):
        out = train_lora(model, tok, samples, cfg)
    assert [line.split(" (")[0].strip() for line in lines] == ["step 3/6", "step 6/6"]  # one line per epoch end
    assert "epoch 1/2, 12 samples" in lines[0] and "epoch 2/2" in lines[1]
    assert f"loss {np.mean(out.losses[3:]):.4f}" in lines[1]  # the mean loss since the last line
    with training_progress(lines.append, every_s=0.0):
        train_lora(model, tok, samples, cfg)
    assert len(lines) == 2 + 6  # every step when the interval is 0
    train_lora(model, tok, samples, cfg)
    assert len(lines) == 8  # no reporter: silent


def test_run_reports_phases_and_records_runtime(tiny_lm_path, tmp_path):
    catalog, inter = toy_movielens()
    said: list[str] = []
    run = run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["ga"], device="cpu"), tmp_path,
                         progress=said.append)  # fmt: skip
    assert run.runtime["device"] == "cpu" and run.params["runtime"] == run.runtime
    starts = [m for m in said if m.startswith(("retrain:", "original:", "ga:")) and "elapsed" in m]
    assert [m.split(":")[0] for m in starts] == ["retrain", "retrain", "original", "original", "ga", "ga"]
    assert any(m.strip().startswith("step ") for m in said)  # the trainer's own progress came through
    saved = json.loads((tmp_path / "partial_results.json").read_text())
    assert [r["method"] for r in saved["reports"]] == ["retrain", "original", "ga"]
    assert set(saved["phase_seconds"]) == {"retrain", "original", "ga"}
    assert saved["params"]["runtime"]["device"] == "cpu"
    assert not list(tmp_path.glob("*.tmp"))  # the atomic writes left no temporary file


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_every_method_on_cuda_with_model_embeddings(tiny_lm_path, tmp_path):
    """On a GPU: every method runs, APA's retrained shards are bit-identical, scores match the CPU's."""
    import torch

    catalog, inter = toy_movielens()
    run = run_unlearning(catalog, inter, tiny_params(tiny_lm_path, device="cuda", embedding="model"), tmp_path / "gpu")
    assert run.runtime["float32_matmul_precision"] == "high" and run.runtime["cublas_workspace_config"]
    assert run.exactness["retrained_bitwise_equal"] and run.exactness["untouched_byte_identical"]
    by = {r.method: r for r in run.reports}
    assert set(by) == {"retrain", "original", "sisa", "receraser", "apa_d", "apa_nd", "e2urec", "badt", "neggrad", "ga"}
    cpu = run_unlearning(catalog, inter, tiny_params(tiny_lm_path, device="cpu", methods=["retrain"], include_original=False),
                         tmp_path / "cpu")  # fmt: skip
    # TF32 and other kernels: close to the CPU run, not equal
    assert abs(cpu.reports[0].test["auc"] - by["retrain"].test["auc"]) < 0.1
    assert torch.backends.cuda.math_sdp_enabled()  # the trainer's attention pin was undone


def test_resume_runs_only_the_missing_methods(tiny_lm_path, tmp_path):
    catalog, inter = toy_movielens()
    # keep_artifacts: a finished request otherwise deletes the original adapter and drops the salt
    params = tiny_params(tiny_lm_path, methods=["sisa", "ga"], device="cpu", keep_artifacts=True)
    first = run_unlearning(catalog, inter, params, tmp_path)
    path = tmp_path / "partial_results.json"
    saved = json.loads(path.read_text())
    assert set(saved["adapters"]) == {"retrain", "original"}
    saved["reports"] = [r for r in saved["reports"] if r["method"] != "ga"]  # as if stopped before ga finished
    path.write_text(json.dumps(saved))
    said: list[str] = []
    again = run_unlearning(catalog, inter, params, tmp_path, progress=said.append, resume=True)
    assert [r.method for r in again.reports] == ["retrain", "original", "sisa", "ga"]
    assert not any(m.startswith(("retrain: training", "original: training", "sisa: ")) for m in said)
    assert any(m.startswith("ga: gradient ascent") for m in said)
    old = {r.method: r for r in first.reports}
    new = {r.method: r for r in again.reports}
    assert new["sisa"].to_dict() == old["sisa"].to_dict()  # kept as it was
    # ga ran from the read-back original and is compared with the read-back reference: same numbers
    assert new["ga"].js_to_retrain_forget == pytest.approx(old["ga"].js_to_retrain_forget, abs=1e-12)
    assert new["ga"].test == old["ga"].test

    said.clear()
    (tmp_path / "retrain.safetensors").write_bytes(b"not the adapter")  # a file that no longer matches its hash
    third = run_unlearning(catalog, inter, params, tmp_path, progress=said.append, resume=True)
    assert any(m.startswith("retrain: training") for m in said)
    assert [r.method for r in third.reports] == ["retrain", "original", "sisa", "ga"]
    with pytest.raises(ValueError, match="cannot resume"):
        run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["sisa", "ga"], device="cpu", seed=1,
                                                   keep_artifacts=True), tmp_path, resume=True)  # fmt: skip
    done = tmp_path / "done"
    run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["ga"], device="cpu"), done)
    with pytest.raises(ValueError, match="finished"):  # a finished request cannot be resumed: its salt is gone
        run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["ga"], device="cpu"), done, resume=True)


def test_cli_flags_for_a_full_size_gpu_run():
    import argparse

    from recaudit.cli.unlearn import add_parser, params_from_args
    from recaudit.unlearning.params import UnlearningParams

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["unlearn", "all", "--data", "x", "--device", "cuda:1", "--users", "0", "--never-seen-users", "100",
                              "--forget-users", "20", "--embedding", "model", "--e2urec-aug-epochs", "3", "--ga-epochs", "2",
                              "--no-exactness", "--resume", "--lora-layers", "0"])  # fmt: skip
    params = UnlearningParams(**params_from_args(args))
    assert (params.device, params.n_users, params.n_never_seen_users, params.forget_users) == ("cuda:1", 0, 100, 20)
    assert params.embedding == "model" and params.e2urec_aug_epochs == 3 and params.ga_epochs == 2
    assert params.verify_exactness is False and params.train.lora_layers is None and args.resume
    assert params.methods == ["retrain", "sisa", "receraser", "apa", "e2urec", "badt", "neggrad", "ga"]
