"""One unlearning experiment: data → original / retrain / SISA / RecEraser / APA / E2URec / Bad-T /
NegGrad / GA → verification, then erasure hygiene.

Used by the ``unlearning`` check and by ``recaudit unlearn``. Users are split into *train users*
(some of whom ask to be forgotten) and *never-seen users* (the membership-inference
non-members). Every method is trained through ``recaudit.tallrec`` on one shared base model and
verified against the adapter retrained from scratch without the forgotten users.

Erasure hygiene: a run is one erasure request (``erasure_request_id``, a UUID unless given). The
forgotten ids never reach a file: params and ``partial_results.json`` hold their count and a
salted SHA-256 (``erasure_digest``), shard manifests hold salted key hashes, and after the run
every adapter trained with the forgotten users (original, e2urec, badt, neggrad, ga) is deleted
from the workdir unless ``keep_artifacts``.

The pieces: ``params`` (UnlearningParams), ``data`` (who is trained on, forgotten, tested),
``runtime`` (device), ``saved`` (partial_results.json, resume), ``erasure`` (digest, deletion);
this module runs the methods in turn.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recaudit.data.catalog import Catalog, Interactions
from recaudit.tallrec.config import TrainConfig
from recaudit.tallrec.encoding import encode_samples
from recaudit.tallrec.lora import LoraState, attach_lora, file_sha256, save_lora, states_equal
from recaudit.tallrec.model import load_base_model
from recaudit.tallrec.prefix import prefix_of
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.trainer import training_progress
from recaudit.unlearning.apa import APA, APAConfig
from recaudit.unlearning.data import UnlearningData, prepare_data
from recaudit.unlearning.e2urec import E2URecConfig, e2urec_unlearn
from recaudit.unlearning.erasure import delete_trained_with_forgotten, erasure_digest
from recaudit.unlearning.gradient_ascent import GradientAscentConfig, gradient_ascent
from recaudit.unlearning.params import METHODS, UnlearningParams
from recaudit.unlearning.partition import Embedder, hashing_embedder, model_embedder
from recaudit.unlearning.receraser import VARIANT as RECERASER_VARIANT
from recaudit.unlearning.receraser import RecEraser
from recaudit.unlearning.retrain import predict_state, train_single, vocab_state
from recaudit.unlearning.runtime import resolve_device, runtime_settings
from recaudit.unlearning.saved import PARTIAL_RESULTS, SavedReports, old_salt
from recaudit.unlearning.shards import train_shard
from recaudit.unlearning.sisa import SISA
from recaudit.unlearning.verify import MethodReport, Predictions, verify_method

__all__ = ["METHODS", "UnlearningParams", "UnlearningRun", "check_apa_exactness", "run_unlearning"]

log = logging.getLogger(__name__)


@dataclass
class UnlearningRun:
    """Reports per method plus the run's data summary, APA exactness and settings.

    ``params`` holds the validated parameters plus ``runtime`` (resolved device, cuBLAS workspace
    setting, float32 matmul precision / TF32, attention kernel), which is also ``runtime`` here.
    """

    reports: list[MethodReport]
    data: dict[str, int]
    params: dict[str, Any]
    exactness: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    prefix_cache_seconds: float = 0.0
    runtime: dict[str, Any] = field(default_factory=dict)
    erasure: dict[str, Any] = field(default_factory=dict)
    erasure_salt: str = field(default="", repr=False)  # for the requester only: never written by recaudit



def run_unlearning(
    catalog: Catalog,
    interactions: Interactions,
    params: UnlearningParams,
    workdir: str | Path,
    progress: Callable[[str], None] | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    resume: bool = False,
) -> UnlearningRun:
    """Train, unlearn and verify every requested method; checkpoints (safetensors) go under ``workdir``.

    With ``resume``, a ``partial_results.json`` left in ``workdir`` by a run with the same params
    and data (e.g. one stopped by a time limit) supplies the methods it finished: their reports are
    kept, the retrained and original adapters are read back (hash-checked) instead of trained, and
    only the missing methods run. A resumed method keeps the timings of the run that made it.
    """
    import torch

    say = progress or (lambda msg: log.info(msg))
    t_start = time.perf_counter()
    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(params.device)  # before anything touches CUDA (cuBLAS workspace setting)
    runtime = runtime_settings(device)
    data = prepare_data(catalog, interactions, params)
    say(f"data: {data.summary()} on {device} ({time.perf_counter() - t_start:.0f} s)")
    cfg = params.train_config()
    base, tok = model_and_tokenizer or load_base_model(params.model, device=device)
    say(f"model loaded ({time.perf_counter() - t_start:.0f} s)")
    with training_progress(say):
        return _run_methods(data, params, cfg, base, tok, workdir, runtime, say, t_start, resume)


def _run_methods(data: UnlearningData, params: UnlearningParams, cfg: TrainConfig, base: Any, tok: Any, workdir: Path,
                 runtime: dict[str, Any], say: Callable[[str], None], t_start: float, resume: bool) -> UnlearningRun:  # fmt: skip
    """Every requested method in turn; each report is saved to ``partial_results.json`` as it lands."""
    model = attach_lora(base, cfg) if not hasattr(base, "peft_config") else base
    embedder: Embedder | None = {"hashing": hashing_embedder, "model": model_embedder(model, tok, cfg.batch_size, cfg.max_length),
                                 "minilm": None}[params.embedding]  # fmt: skip
    sets = data.sets()
    forget_ids = set(data.forget_users)

    def forgotten(s: TallRecSample) -> bool:
        return s.user_id in forget_ids

    def evaluate(fn: Callable[[Sequence[TallRecSample]], np.ndarray],
                 vocab: Callable[[Sequence[TallRecSample]], np.ndarray] | None = None) -> Predictions:  # fmt: skip
        t0 = time.perf_counter()
        test = fn(data.test)
        seconds = time.perf_counter() - t0
        preds = Predictions(test, fn(data.forget), fn(data.never_seen), test_seconds=seconds)
        preds.forget_vocab = vocab(data.forget) if vocab is not None else None
        return preds

    def of_state(state: LoraState) -> Callable[[Sequence[TallRecSample]], np.ndarray]:
        return lambda xs: predict_state(model, tok, state, xs, cfg)

    def vocab_of(state: LoraState) -> Callable[[Sequence[TallRecSample]], np.ndarray]:
        return lambda xs: vocab_state(model, tok, state, xs, cfg)

    def eval_state(state: LoraState) -> Predictions:
        return evaluate(of_state(state), vocab_of(state))

    partial = workdir / PARTIAL_RESULTS
    salt = (old_salt(partial) if resume else None) or secrets.token_hex(16)
    request_id = params.erasure_request_id or str(uuid.uuid4())
    digest = erasure_digest(data.forget_users, salt)
    run_params = params.model_dump(mode="json") | {"runtime": runtime}
    run_params["forget_users"] = {"count": len(data.forget_users), "salted_sha256": digest}
    reports = SavedReports(partial, data.summary(), run_params, say, t_start, resume, salt)
    n_eval = len(data.test) + len(data.forget) + len(data.never_seen)
    prefix_s = 0.0
    prefix = prefix_of(model)
    if prefix is not None:
        # the frozen bottom blocks run once per sample here, so no method's time includes that shared pass
        say("computing the frozen bottom blocks once per sample (shared by every method)")
        t0 = time.perf_counter()
        for e in encode_samples(tok, data.train + data.test + data.never_seen, cfg.max_length):
            prefix.hidden(model, e)
        prefix_s = time.perf_counter() - t0

    retrain_state = reports.saved_adapter("retrain", workdir / "retrain.safetensors")
    if retrain_state is not None and reports.done("retrain"):
        say("retrain: read back from the earlier run; scoring the reference predictions again")
        ref = eval_state(retrain_state)
    else:
        reports.drop("retrain")
        reports.start("retrain", f"training from scratch on the {len(data.retain)} retained samples, then scoring {n_eval}")
        retrain_state, retrain_s = train_single(model, tok, data.retain, cfg, params.seed, data.valid)
        reports.save_adapter("retrain", retrain_state, workdir / "retrain.safetensors")
        ref = eval_state(retrain_state)
        reports.append(verify_method("retrain", ref, None, sets, retrain_s, retrain_s, params.seed))

    original: LoraState | None = None
    need_original = not reports.done(*[m for m in ("e2urec", "badt", "neggrad", "ga") if m in params.methods])
    if (params.include_original and not reports.done("original")) or need_original:
        original = reports.saved_adapter("original", workdir / "original.safetensors")
        if original is None:
            reports.drop("original")
            reports.start("original", f"training on all {len(data.train)} samples (the model before unlearning)")
            original, original_s = train_single(model, tok, data.train, cfg, params.seed, data.valid)
            reports.save_adapter("original", original, workdir / "original.safetensors")
            if params.include_original:
                reports.append(verify_method("original", eval_state(original), ref, sets, 0.0, original_s, params.seed))

    if "sisa" in params.methods and not reports.done("sisa"):
        reports.start("sisa", f"{params.n_shards} random shards of {len(data.train)} samples; scoring costs "
                      f"{params.n_shards} x {n_eval} sample passes")  # fmt: skip
        sisa = SISA(model, tok, cfg, workdir / "sisa", params.n_shards, params.seed, progress=say, valid=data.valid)
        train_s = sisa.fit(data.train)
        say(f"sisa: unlearning {len(data.forget)} samples (elapsed {time.perf_counter() - t_start:.0f} s)")
        stats = sisa.unlearn(forgotten)
        say(f"sisa: scoring with {params.n_shards} shard adapters (elapsed {time.perf_counter() - t_start:.0f} s)")
        reports.append(verify_method("sisa", evaluate(sisa.predict, sisa.vocab_probs), ref, sets, stats.seconds, train_s,
                                     params.seed, {"affected_shards": stats.affected_shards,
                                                   "per_shard_unlearn_seconds": {str(k): v for k, v in stats.per_shard_seconds.items()},
                                                   "model_calls_per_sample": params.n_shards}))  # fmt: skip

    if "receraser" in params.methods and not reports.done("receraser"):
        reports.start("receraser", f"{params.n_shards} user-balanced shards, attention aggregation on "
                      f"{params.receraser_agg_samples} samples")  # fmt: skip
        rec = RecEraser(model, tok, cfg, workdir / "receraser", params.n_shards, params.seed, embedder,
                        params.receraser_agg_samples, progress=say, valid=data.valid)  # fmt: skip
        train_s = rec.fit(data.train)
        stats = rec.unlearn(forgotten)
        rec.embed_queries(data.test + data.forget + data.never_seen)  # routing embeddings: not in the inference time
        reports.append(verify_method("receraser", evaluate(rec.predict), ref, sets, stats.seconds, train_s, params.seed,
                                     {"affected_shards": stats.affected_shards, "variant": RECERASER_VARIANT,
                                      "per_shard_unlearn_seconds": {str(k): v for k, v in stats.per_shard_seconds.items()},
                                      "aggregator_seconds": rec.aggregator_seconds,
                                      "model_calls_per_sample": params.n_shards}))  # fmt: skip

    if "apa" in params.methods and not reports.done("apa_d", "apa_nd"):
        reports.drop("apa_d", "apa_nd")
        reports.exactness = {}
        reports.start("apa", f"{params.n_shards} semantic shards ({params.embedding} embeddings) of {len(data.train)} "
                      f"samples, top-{params.top_k} aggregation")  # fmt: skip
        apa_cfg = APAConfig(params.n_shards, params.top_k, params.temperature, group_by_user=params.apa_group_by_user,
                            partition=params.apa_partition, shared_init=params.apa_shared_init)  # fmt: skip
        apa = APA(model, tok, cfg, workdir / "apa", apa_cfg, params.seed, embedder, progress=say, valid=data.valid)
        train_s = apa.fit(data.train)
        before = {i.shard: i.sha256 for i in apa.shards.shards}
        say(f"apa: unlearning {len(data.forget)} samples (elapsed {time.perf_counter() - t_start:.0f} s)")
        stats = apa.unlearn(forgotten)
        if params.verify_exactness:
            say(f"apa: exactness check, training the {len(stats.affected_shards)} retrained shard(s) again from scratch "
                f"(elapsed {time.perf_counter() - t_start:.0f} s)")  # fmt: skip
            reports.exactness = check_apa_exactness(apa, before, stats.affected_shards)
            say(f"apa exactness: {reports.exactness}")
        reports.exactness["exactness"] = apa_cfg.exactness
        reports.exactness["partition"] = apa_cfg.partition
        shard_p = apa.shard_predictions(data.test)
        shard_auc = [_auc(sets.test_labels, shard_p[k]) for k in range(params.n_shards)]
        say(f"apa_d: scoring {n_eval} samples (elapsed {time.perf_counter() - t_start:.0f} s)")
        details = {"affected_shards": stats.affected_shards, "shard_sizes": [len(i.keys) for i in apa.shards.shards],
                   "model_calls_per_sample": 1, "exactness": apa_cfg.exactness, "partition": apa_cfg.partition,
                   "shared_init": apa_cfg.shared_init, "shard_test_auc": shard_auc,
                   "per_shard_unlearn_seconds": {str(k): v for k, v in stats.per_shard_seconds.items()}}  # fmt: skip
        apa.weights(data.test + data.forget + data.never_seen)  # routing embeddings: not in the inference time
        for mode in ("d", "nd"):
            if mode == "nd":
                reports.start("apa_nd", f"scoring {n_eval} samples")
            preds = evaluate(lambda xs, m=mode: apa.predict(xs, m), lambda xs, m=mode: apa.vocab_probs(xs, m))
            reports.append(verify_method(f"apa_{mode}", preds, ref, sets, stats.seconds, train_s, params.seed, details))

    for name, teacher in (("e2urec", "e2urec"), ("badt", "bad")):
        if name not in params.methods or reports.done(name) or original is None:
            continue
        what = (f"augmented model ({params.e2urec_aug_epochs} epochs on {len(data.forget)} forget samples), "
                if teacher == "e2urec" else "bad teacher (base LLM, adapter off) on the forget set, ")  # fmt: skip
        reports.start(name, what + f"LoRA distillation ({params.e2urec_epochs} epochs)")
        e2 = E2URecConfig(alpha=params.e2urec_alpha, relu=params.e2urec_relu, w_forget=params.e2urec_w_forget,
                          w_retain=params.e2urec_w_retain, epochs=params.e2urec_epochs, aug_epochs=params.e2urec_aug_epochs,
                          forgetting_teacher=teacher)  # fmt: skip
        out = e2urec_unlearn(model, tok, original, data.forget, data.retain, cfg, e2, params.seed)
        save_lora(out.state, workdir / f"{name}.safetensors")
        detail = {"checkpoint": f"last step ({out.selected_step}), fixed in advance (the official code picks a step, no validation)"}
        if teacher == "bad":
            detail["variant"] = "bad teacher = base LLM with the adapter off (Bad-T uses a randomly initialised model)"
        reports.append(verify_method(name, eval_state(out.state), ref, sets, out.seconds, seed=params.seed, details=detail))

    for name in ("neggrad", "ga"):
        if name not in params.methods or reports.done(name) or original is None:
            continue
        if name == "neggrad":
            gcfg = GradientAscentConfig(params.neggrad_epochs, params.neggrad_lr, variant="neggrad", weight=params.neggrad_weight)
            reports.start(name, f"NegGrad: CE(retain) - {params.neggrad_weight} CE(forget), {params.neggrad_epochs} epoch(s)")
        else:
            gcfg = GradientAscentConfig(params.ga_epochs, params.ga_lr, variant="ga")
            reports.start(name, f"gradient ascent (pure, no retain term), {params.ga_epochs} epoch(s) on {len(data.forget)} forget samples")
        state, seconds = gradient_ascent(model, tok, original, data.forget, cfg, gcfg, params.seed, retain=data.retain)
        save_lora(state, workdir / f"{name}.safetensors")
        detail = {"variant": "NegGrad (E2URec's GA baseline: retain term)" if name == "neggrad" else "pure ascent, no retain term"}
        reports.append(verify_method(name, eval_state(state), ref, sets, seconds, seed=params.seed, details=detail))

    say(f"all methods done ({time.perf_counter() - t_start:.0f} s)")
    erasure = {"request_id": request_id, "forgotten_users": len(data.forget_users), "forgotten_ids_salted_sha256": digest,
               "salt_stored": False, "deleted_artifacts": [], "kept_artifacts": params.keep_artifacts}  # fmt: skip
    if not params.keep_artifacts:
        erasure["deleted_artifacts"] = delete_trained_with_forgotten(workdir)
        reports.salt = None  # the salt leaves the workdir once the request is done (only --resume needed it)
    reports.erasure = erasure
    reports.write()
    order = ["retrain", "original", "sisa", "receraser", "apa_d", "apa_nd", "e2urec", "badt", "neggrad", "ga"]
    ordered = sorted(reports, key=lambda r: order.index(r.method) if r.method in order else len(order))
    return UnlearningRun(ordered, data.summary(), run_params, reports.exactness, time.perf_counter() - t_start,
                         prefix_s, runtime, erasure, salt)  # fmt: skip


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from recaudit.tallrec.evaluate import evaluate_scores

    return evaluate_scores(labels, scores)["auc"]



def check_apa_exactness(apa: APA, hashes_before: dict[int, str], affected: Sequence[int]) -> dict[str, Any]:
    """Retrain each affected shard from scratch on its remaining samples and compare bitwise; hash the rest."""
    equal = []
    for k in affected:
        fresh, _, _ = train_shard(apa.model, apa.tokenizer, apa.shards.shard_samples(k), apa.config, apa.seed, k,
                                  apa.apa.shared_init, apa.shards.valid)  # fmt: skip
        equal.append(states_equal(fresh, apa.shards.state(k)))
    untouched = [i for i in apa.shards.shards if i.shard not in set(affected)]
    same = [file_sha256(i.path) == hashes_before[i.shard] for i in untouched]
    return {
        "retrained_shards": list(affected),
        "retrained_bitwise_equal": bool(all(equal)) if equal else True,
        "untouched_shards": [i.shard for i in untouched],
        "untouched_byte_identical": bool(all(same)) if same else True,
    }
