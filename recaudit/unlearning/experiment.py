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
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recaudit.data.catalog import Catalog, Interactions
from recaudit.tallrec.config import TrainConfig
from recaudit.tallrec.encoding import encode_samples
from recaudit.tallrec.lora import LoraState, attach_lora, file_sha256, save_lora, states_equal
from recaudit.tallrec.model import load_base_model
from recaudit.tallrec.prefix import prefix_of
from recaudit.tallrec.prompts import TallRecSample, build_samples, split_samples
from recaudit.tallrec.trainer import training_progress
from recaudit.unlearning.apa import APA, APAConfig
from recaudit.unlearning.e2urec import E2URecConfig, e2urec_unlearn
from recaudit.unlearning.gradient_ascent import GradientAscentConfig, gradient_ascent
from recaudit.unlearning.partition import Embedder, model_embedder
from recaudit.unlearning.receraser import VARIANT as RECERASER_VARIANT
from recaudit.unlearning.receraser import RecEraser
from recaudit.unlearning.retrain import predict_state, train_single, vocab_state
from recaudit.unlearning.shards import train_shard
from recaudit.unlearning.sisa import SISA
from recaudit.unlearning.verify import EvalSets, MethodReport, Predictions, verify_method

log = logging.getLogger(__name__)

METHODS = ("retrain", "sisa", "receraser", "apa", "e2urec", "badt", "neggrad", "ga")
Method = Literal["retrain", "sisa", "receraser", "apa", "e2urec", "badt", "neggrad", "ga"]
TRAINED_WITH_FORGOTTEN = ("original", "e2urec", "badt", "neggrad", "ga")  # adapters deleted after the request


class UnlearningParams(BaseModel):
    """Everything an unlearning experiment needs; defaults sized for a CPU run with SmolLM2."""

    model_config = ConfigDict(extra="forbid")

    model: str = "default"
    device: str = "auto"
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    include_original: bool = True
    seed: int = 0
    # data
    n_users: int = Field(40, ge=0, description="training users sampled; 0 = every eligible user not held out")
    n_never_seen_users: int = 10
    forget_users: int | list[str] = 4
    history_len: int = 10
    max_per_user: int | None = 10
    test_frac: float = 0.2
    split: Literal["time", "user_time", "random"] = "user_time"
    like_threshold: float = 3.0
    # trainer (TrainConfig fields)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_layers: int | None = None
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 8
    max_length: int = 384
    # sharding
    n_shards: int = 4
    top_k: int = 2
    temperature: float = 0.1
    embedding: Literal["minilm", "hashing", "model"] = "minilm"
    apa_group_by_user: bool = False
    apa_partition: Literal["kmeans", "user_kmeans", "user_hash"] = "kmeans"
    apa_shared_init: bool = True
    receraser_agg_samples: int = Field(512, ge=1)
    verify_exactness: bool = True
    # E2URec and gradient ascent
    e2urec_alpha: float = 1.0
    e2urec_relu: bool = True
    e2urec_w_forget: float = 0.5
    e2urec_w_retain: float = 0.5
    e2urec_epochs: int = 2
    e2urec_aug_epochs: int = 2
    ga_epochs: int = 1
    ga_lr: float | None = None
    neggrad_weight: float = 0.2
    neggrad_epochs: int = 1
    neggrad_lr: float | None = None
    loss_on: Literal["answer", "sequence"] = "answer"
    torch_threads: int | None = None
    # erasure request
    erasure_request_id: str | None = None
    keep_artifacts: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {v!r}")
        return v

    @field_validator("methods")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("methods must name at least one of " + ", ".join(METHODS))
        return list(dict.fromkeys(v))

    def train_config(self) -> TrainConfig:
        """The shared TrainConfig of every method."""
        return TrainConfig(
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, target_modules=tuple(self.target_modules), lr=self.lr,
            epochs=self.epochs, batch_size=self.batch_size, max_length=self.max_length, seed=self.seed,
            lora_layers=self.lora_layers, loss_on=self.loss_on,
        )  # fmt: skip


@dataclass
class UnlearningData:
    """Train / forget / retain / test / never-seen samples and who was forgotten."""

    train: list[TallRecSample]
    forget: list[TallRecSample]
    retain: list[TallRecSample]
    test: list[TallRecSample]
    never_seen: list[TallRecSample]
    forget_users: list[str]

    def sets(self) -> EvalSets:
        lab = lambda xs: np.array([s.label for s in xs], dtype=int)  # noqa: E731
        return EvalSets(lab(self.test), lab(self.forget), lab(self.never_seen))

    def summary(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("train", "forget", "retain", "test", "never_seen")} | {
            "forget_users": len(self.forget_users)
        }


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


def erasure_digest(user_ids: Sequence[str], salt: str) -> str:
    """Salted SHA-256 of a set of user ids (order and duplicates do not matter)."""
    blob = "\x1f".join([salt, *sorted(set(map(str, user_ids)))]).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _old_salt(path: Path) -> str | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8")).get("erasure_salt")
    except (OSError, ValueError):
        return None


def prepare_data(catalog: Catalog, interactions: Interactions, p: UnlearningParams) -> UnlearningData:
    """Sample users, build TALLRec samples, split, and choose the users to forget (all seeded)."""
    if p.n_users == 1:
        raise ValueError("n_users must be >= 2 (or 0 for every user)")
    wanted = 10**9 if p.n_users == 0 else p.n_users + p.n_never_seen_users
    users = interactions.sample_users(wanted, p.seed, min_interactions=p.history_len + 2)
    if len(users) < (2 if p.n_users == 0 else p.n_users) + max(1, p.n_never_seen_users):
        raise ValueError(f"only {len(users)} users have > {p.history_len + 1} interactions; lower n_users or history_len")
    rng = np.random.default_rng(p.seed)
    unseen = set(rng.choice(users, size=p.n_never_seen_users, replace=False).tolist()) if p.n_never_seen_users else set()
    train_users = [u for u in users if u not in unseen]
    if isinstance(p.forget_users, int):
        if not 1 <= p.forget_users < len(train_users):
            raise ValueError(f"forget_users must be in [1, {len(train_users) - 1}], got {p.forget_users}")
        forget_users = sorted(rng.choice(train_users, size=p.forget_users, replace=False).tolist())
    else:
        forget_users = sorted(set(map(str, p.forget_users)))
        known = set(interactions.user_ids)
        missing = [u for u in forget_users if u not in known]
        if missing:
            raise ValueError(f"forget_users not in the interactions: {missing[:5]}")
        train_users = sorted(set(train_users) | set(forget_users) - unseen)

    def samples_of(uids: Sequence[str]) -> list[TallRecSample]:
        return build_samples(interactions.filter_users(uids), catalog, p.history_len, p.seed,
                             max_per_user=p.max_per_user, like_threshold=p.like_threshold)  # fmt: skip

    train, _, test = split_samples(samples_of(train_users), 0.0, p.test_frac, by=p.split, seed=p.seed)
    never_seen = split_samples(samples_of(sorted(unseen)), 0.0, p.test_frac, by=p.split, seed=p.seed)[0] if unseen else []
    gone = set(forget_users)
    forget = [s for s in train if s.user_id in gone]
    if not forget:
        raise ValueError("the chosen forget users have no training samples")
    return UnlearningData(
        train=train,
        forget=forget,
        retain=[s for s in train if s.user_id not in gone],
        test=[s for s in test if s.user_id not in gone],
        never_seen=never_seen,
        forget_users=forget_users,
    )


def hashing_embedder(texts: Sequence[str]) -> np.ndarray:
    """A model-free bag-of-words embedding (sklearn HashingVectorizer, 512 dims): cheap and deterministic."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=512, alternate_sign=False, norm="l2").transform(list(texts)).toarray()


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when a GPU is visible, else "cpu"; on CUDA, set up deterministic cuBLAS and TF32.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts for ``use_deterministic_algorithms``
    to make matmuls repeatable (APA's shard-exactness check relies on it), so it is set before
    torch is asked about CUDA at all; TF32 keeps float32 training fast on Ampere/Hopper and is
    itself deterministic.
    """
    import os

    if device == "auto" or device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
        torch.set_float32_matmul_precision("high")  # TF32 matmuls (cuBLAS); the CPU path is left as it was
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but torch sees no MPS device")
    return device


def runtime_settings(device: str) -> dict[str, Any]:
    """What decides the numbers beyond the params: device, cuBLAS workspace, matmul precision, attention kernel."""
    import os

    import torch

    out: dict[str, Any] = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        out.update(
            gpu=torch.cuda.get_device_name(torch.device(device)),
            cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            float32_matmul_precision=torch.get_float32_matmul_precision(),
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
            training_attention="sdpa math kernel (deterministic backward)",
        )
    return out


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
    salt = (_old_salt(partial) if resume else None) or secrets.token_hex(16)
    request_id = params.erasure_request_id or str(uuid.uuid4())
    digest = erasure_digest(data.forget_users, salt)
    run_params = params.model_dump(mode="json") | {"runtime": runtime}
    run_params["forget_users"] = {"count": len(data.forget_users), "salted_sha256": digest}
    reports = _SavedReports(partial, data.summary(), run_params, say, t_start, resume, salt)
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
        retrain_state, retrain_s = train_single(model, tok, data.retain, cfg, params.seed)
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
            original, original_s = train_single(model, tok, data.train, cfg, params.seed)
            reports.save_adapter("original", original, workdir / "original.safetensors")
            if params.include_original:
                reports.append(verify_method("original", eval_state(original), ref, sets, 0.0, original_s, params.seed))

    if "sisa" in params.methods and not reports.done("sisa"):
        reports.start("sisa", f"{params.n_shards} random shards of {len(data.train)} samples; scoring costs "
                      f"{params.n_shards} x {n_eval} sample passes")  # fmt: skip
        sisa = SISA(model, tok, cfg, workdir / "sisa", params.n_shards, params.seed, progress=say)
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
                        params.receraser_agg_samples, progress=say)  # fmt: skip
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
        apa = APA(model, tok, cfg, workdir / "apa", apa_cfg, params.seed, embedder, progress=say)
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
        for name in TRAINED_WITH_FORGOTTEN:
            path = workdir / f"{name}.safetensors"
            if path.exists():
                path.unlink()
                erasure["deleted_artifacts"].append(path.name)
    if not params.keep_artifacts:
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


PARTIAL_RESULTS = "partial_results.json"


class _SavedReports(list):
    """The reports so far, rewritten to a JSON file after each method, so a run stopped by a time
    limit keeps every method it finished (and ``resume`` can pick them up); also says when each
    method starts and how long it took. The file also holds the SHA-256 of the retrained and
    original adapters and APA's exactness result."""

    def __init__(self, path: Path, data: dict[str, int], params: dict[str, Any], say: Callable[[str], None], t0: float,
                 resume: bool = False, salt: str | None = None):  # fmt: skip
        super().__init__()
        self.salt = salt
        self.erasure: dict[str, Any] = {}
        self.path, self.data, self.params, self.say, self.t0 = path, data, params, say, t0
        self.phase_t0 = time.perf_counter()
        self.phase_seconds: dict[str, float] = {}
        self.adapters: dict[str, str] = {}
        self.exactness: dict[str, Any] = {}
        if resume and path.is_file():
            self._load()

    def _load(self) -> None:
        import json

        old = json.loads(self.path.read_text(encoding="utf-8"))
        if old.get("erasure") and not old.get("erasure_salt"):
            raise ValueError(f"cannot resume: the erasure request in {self.path} finished and its salt was dropped; "
                             "run without --resume (or use --keep-artifacts to keep a run resumable)")  # fmt: skip
        strip = lambda p: {k: v for k, v in (p or {}).items() if k != "runtime"}  # noqa: E731
        if old.get("data") != self.data or strip(old.get("params")) != strip(self.params):
            raise ValueError(f"cannot resume: {self.path} was written by a run with other params or data; "
                             "use another workdir or run without resume")  # fmt: skip
        self.extend(MethodReport(**r) for r in old.get("reports", []))
        self.phase_seconds = dict(old.get("phase_seconds", {}))
        self.adapters = dict(old.get("adapters", {}))
        self.exactness = dict(old.get("exactness", {}))
        self.say(f"resuming from {self.path}: {', '.join(r.method for r in self) or 'no method'} finished before")

    def done(self, *methods: str) -> bool:
        """True when every named method already has a report."""
        have = {r.method for r in self}
        return all(m in have for m in methods)

    def drop(self, *methods: str) -> None:
        """Forget the reports of ``methods`` (a method that runs again replaces its half-finished group)."""
        self[:] = [r for r in self if r.method not in methods]

    def saved_adapter(self, name: str, path: Path) -> LoraState | None:
        """The adapter an earlier run saved as ``name``, if its file still has the recorded SHA-256."""
        from recaudit.tallrec.lora import load_lora

        if name in self.adapters and path.is_file() and file_sha256(path) == self.adapters[name]:
            return load_lora(path)
        return None

    def save_adapter(self, name: str, state: LoraState, path: Path) -> None:
        """Save an adapter and record its hash (so a resumed run can trust the file)."""
        save_lora(state, path)
        self.adapters[name] = file_sha256(path)
        self.write()

    def start(self, method: str, what: str) -> None:
        """Say that ``method`` starts (and what it will do); its report line gives the time since."""
        self.phase_t0 = time.perf_counter()
        self.say(f"{method}: {what} (elapsed {self.phase_t0 - self.t0:.0f} s)")

    def append(self, report: MethodReport) -> None:  # type: ignore[override]
        super().append(report)
        now = time.perf_counter()
        self.phase_seconds[report.method] = round(now - self.phase_t0, 1)
        self.say(f"{report.method}: test AUC {report.test.get('auc', float('nan')):.4f}, "
                 f"unlearn {report.unlearn_seconds:.1f} s; method took {now - self.phase_t0:.1f} s (elapsed {now - self.t0:.0f} s)")  # fmt: skip
        self.phase_t0 = now
        self.write()

    def write(self) -> None:
        """Rewrite the file with everything so far."""
        write_json_atomic(self.path, {"data": self.data, "params": self.params,
                                      "elapsed_s": round(time.perf_counter() - self.t0, 1),
                                      "phase_seconds": self.phase_seconds, "adapters": self.adapters,
                                      "exactness": self.exactness, "erasure_salt": self.salt, "erasure": self.erasure,
                                      "reports": [r.to_dict() for r in self]})  # fmt: skip


def write_json_atomic(path: Path, blob: Any) -> None:
    """Write JSON atomically (``recaudit.atomic``), so a reader (or a killed run) never sees half a file."""
    import json

    from recaudit.atomic import atomic_text

    with atomic_text(path) as f:
        json.dump(blob, f, indent=1, default=str)


def check_apa_exactness(apa: APA, hashes_before: dict[int, str], affected: Sequence[int]) -> dict[str, Any]:
    """Retrain each affected shard from scratch on its remaining samples and compare bitwise; hash the rest."""
    equal = []
    for k in affected:
        fresh, _, _ = train_shard(apa.model, apa.tokenizer, apa.shards.shard_samples(k), apa.config, apa.seed, k,
                                  apa.apa.shared_init)  # fmt: skip
        equal.append(states_equal(fresh, apa.shards.state(k)))
    untouched = [i for i in apa.shards.shards if i.shard not in set(affected)]
    same = [file_sha256(i.path) == hashes_before[i.shard] for i in untouched]
    return {
        "retrained_shards": list(affected),
        "retrained_bitwise_equal": bool(all(equal)) if equal else True,
        "untouched_shards": [i.shard for i in untouched],
        "untouched_byte_identical": bool(all(same)) if same else True,
    }
