"""APA: balanced partition, exact shard unlearning, and the aggregation algebra (tiny model, CPU)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.tallrec import TrainConfig, attach_lora, build_samples, file_sha256, load_base_model, score_samples, states_equal
from recaudit.tallrec.lora import load_lora_state_dict, lora_state_dict
from recaudit.unlearning.apa import (
    APA,
    APAConfig,
    aggregate_decomposed,
    aggregate_rank_concat,
    aggregation_weights,
    delta_weights,
)
from recaudit.unlearning.partition import hashing_embedder
from recaudit.unlearning.partition import balanced_kmeans, random_partition
from recaudit.unlearning.shards import train_shard


def toy_samples(n_users: int = 6, per_user: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    genres = ["Space", "Love", "War"]
    catalog = Catalog([Item(str(i), f"{genres[i % 3]} story {i}") for i in range(24)])
    rows = []
    for u in range(n_users):
        for t, i in enumerate(rng.choice(24, per_user, replace=False)):
            rows.append((str(u + 1), str(i), int(rng.integers(1, 6)), t))
    inter = Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))
    return build_samples(inter, catalog, history_len=2)


@pytest.fixture(scope="module")
def peft_tiny(tiny_lm_path):
    import torch

    torch.set_num_threads(1)
    model, tok = load_base_model(tiny_lm_path)
    return attach_lora(model, CFG), tok


CFG = TrainConfig(seed=0, batch_size=4, lr=1e-2, epochs=1, max_length=256)


def test_balanced_kmeans_sizes_and_semantics():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.05, size=(10, 2)) for c in ([0, 5], [5, 0], [-5, 0])])
    part = balanced_kmeans(blobs, 3, seed=0)
    assert sorted(part.sizes()) == [10, 10, 10]
    for b in range(3):  # each blob lands in one shard
        assert len(set(part.assignment[b * 10 : (b + 1) * 10])) == 1
    uneven = balanced_kmeans(rng.normal(size=(11, 4)), 4, seed=1)
    assert sorted(uneven.sizes()) == [2, 3, 3, 3]
    with pytest.raises(ValueError, match="n_shards"):
        balanced_kmeans(blobs, 0, seed=0)


def test_balanced_kmeans_is_deterministic():
    x = np.random.default_rng(3).normal(size=(40, 5))
    a, b = balanced_kmeans(x, 4, seed=7), balanced_kmeans(x, 4, seed=7)
    assert np.array_equal(a.assignment, b.assignment) and np.allclose(a.centroids, b.centroids)
    assert sorted(random_partition(10, 3, seed=0).sizes()) == [3, 3, 4]


def test_weights_sum_to_one_with_top_k_support():
    rng = np.random.default_rng(0)
    cent = rng.normal(size=(5, 8))
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    emb = rng.normal(size=(7, 8))
    w = aggregation_weights(emb, cent, top_k=2, temperature=0.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert ((w > 0).sum(axis=1) == 2).all()
    sims = emb @ cent.T
    assert (np.argmax(w, axis=1) == np.argmax(sims, axis=1)).all()  # the most similar shard weighs most
    hot = aggregation_weights(emb, cent, top_k=5, temperature=1e-4)
    np.testing.assert_allclose(hot.max(axis=1), 1.0)  # low temperature → one-hot
    with pytest.raises(ValueError, match="temperature"):
        aggregation_weights(emb, cent, 2, 0.0)


def _random_state(seed: int, r: int = 2):
    import torch

    g = torch.Generator().manual_seed(seed)
    return {
        "m.q.lora_A.weight": torch.randn((r, 6), generator=g),
        "m.q.lora_B.weight": torch.randn((4, r), generator=g),
    }


def test_aggregation_algebra():
    import torch

    s1, s2 = _random_state(1), _random_state(2)
    w = [0.3, 0.7]
    d = delta_weights(aggregate_decomposed([s1, s2], w), 1.0)["m.q"]
    nd = delta_weights(aggregate_rank_concat([s1, s2], w), 1.0)["m.q"]
    expected_nd = 0.3 * (s1["m.q.lora_B.weight"] @ s1["m.q.lora_A.weight"]) + 0.7 * (s2["m.q.lora_B.weight"] @ s2["m.q.lora_A.weight"])
    torch.testing.assert_close(nd.float(), expected_nd, atol=1e-6, rtol=0)  # rank concat == Σ w B A
    b = 0.3 * s1["m.q.lora_B.weight"] + 0.7 * s2["m.q.lora_B.weight"]
    a = 0.3 * s1["m.q.lora_A.weight"] + 0.7 * s2["m.q.lora_A.weight"]
    torch.testing.assert_close(d.float(), b @ a, atol=1e-6, rtol=0)  # D == (Σ w B)(Σ w A)
    assert (d - nd).abs().max() > 1e-3  # D ≠ ND: D carries the cross terms w1 w2 (B1 A2 + B2 A1)
    cross = 0.3 * 0.7 * (s1["m.q.lora_B.weight"] @ s2["m.q.lora_A.weight"] + s2["m.q.lora_B.weight"] @ s1["m.q.lora_A.weight"])
    diff = 0.3 * 0.7 * (s1["m.q.lora_B.weight"] @ s1["m.q.lora_A.weight"] + s2["m.q.lora_B.weight"] @ s2["m.q.lora_A.weight"])
    torch.testing.assert_close((d - nd).float(), cross - diff, atol=1e-5, rtol=0)
    same_d = delta_weights(aggregate_decomposed([s1, s1], w), 1.0)["m.q"]
    same_nd = delta_weights(aggregate_rank_concat([s1, s1], w), 1.0)["m.q"]
    torch.testing.assert_close(same_d, same_nd, atol=1e-6, rtol=0)  # identical shards: D == ND
    one = aggregate_decomposed([s1], [1.0])
    assert states_equal(one, s1)


def test_apa_exact_unlearning_and_untouched_shards(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples()
    apa = APA(model, tok, CFG, tmp_path / "apa", APAConfig(n_shards=3, top_k=2), seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    assert sorted(len(i.keys) for i in apa.shards.shards) == sorted([len(samples) // 3 + (k < len(samples) % 3) for k in range(3)])
    before = {i.shard: file_sha256(i.path) for i in apa.shards.shards}
    victim = samples[0].user_id
    holding = {i.shard for i in apa.shards.shards if any(k[0] == victim for k in i.keys)}
    stats = apa.unlearn(lambda s: s.user_id == victim)
    assert set(stats.affected_shards) == holding and stats.removed == sum(s.user_id == victim for s in samples)
    for info in apa.shards.shards:
        assert all(k[0] != victim for k in info.keys)
        if info.shard in holding:
            remaining = [s for s in samples if (s.user_id, s.item_id, s.timestamp) in set(info.keys)]
            fresh, _, _ = train_shard(model, tok, remaining, CFG, 0, info.shard)
            assert states_equal(fresh, apa.shards.state(info.shard))  # bitwise: exact unlearning
            assert file_sha256(info.path) != before[info.shard]
        else:
            assert file_sha256(info.path) == before[info.shard]  # untouched: byte-identical file
    # a shard trained on different data is not equal (the exactness check can fail)
    other, _, _ = train_shard(model, tok, samples[:5], CFG, 0, 0)
    assert not states_equal(other, apa.shards.state(0))


def test_one_shard_aggregate_equals_that_shard(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples(n_users=3)
    apa = APA(model, tok, CFG, tmp_path / "one", APAConfig(n_shards=1, top_k=1), seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    load_lora_state_dict(model, apa.shards.state(0))
    single = score_samples(model, tok, samples, max_length=CFG.max_length)
    np.testing.assert_array_equal(apa.predict_merged(samples, "d"), single)
    np.testing.assert_allclose(apa.predict(samples, "d"), single, atol=1e-6)
    np.testing.assert_allclose(apa.predict(samples, "nd"), single, atol=1e-6)
    np.testing.assert_allclose(apa.weights(samples).sum(axis=1), 1.0)


def test_nd_adapter_matches_weighted_delta_and_differs_from_d(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples()
    apa = APA(model, tok, CFG, tmp_path / "two", APAConfig(n_shards=2, top_k=2, temperature=1.0), seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    w = apa.weights(samples[:1])[0]
    assert (w > 0).all() and w.sum() == pytest.approx(1.0)
    d = apa.predict_merged(samples, "d")
    nd = apa.predict_merged(samples, "nd")
    assert np.abs(d - nd).max() > 1e-6  # the two forms are different models
    # the ND adapter in the model holds exactly Σ w_k B_k A_k (LoRA scaling unchanged)
    adapter = apa.nd_adapter()
    nd_state = lora_state_dict(model, adapter)
    got = delta_weights(nd_state, 1.0)
    want = {}
    for k in range(2):
        for name, dw in delta_weights(apa.shards.state(k), 1.0).items():
            want[name] = want.get(name, 0) + apa.weights(samples[-1:])[0][k] * dw
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), atol=1e-6)
    assert model.peft_config[adapter].lora_alpha / model.peft_config[adapter].r == CFG.lora_alpha / CFG.lora_r
    assert all(not p.requires_grad for n, p in model.named_parameters() if adapter in n)
    assert any(p.requires_grad for n, p in model.named_parameters() if ".default." in n)


def test_group_by_user_puts_each_user_in_one_shard_so_forgetting_touches_one(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples()
    apa = APA(model, tok, CFG, tmp_path / "users", APAConfig(n_shards=3, group_by_user=True), seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    owner = {}
    for info in apa.shards.shards:
        for key in info.keys:
            assert owner.setdefault(key[0], info.shard) == info.shard
    assert sorted(np.bincount(list(owner.values()), minlength=3).tolist()) == [2, 2, 2]  # balanced by users
    stats = apa.unlearn(lambda s: s.user_id == "3")
    assert stats.affected_shards == [owner["3"]]


def test_batched_prediction_equals_one_merged_adapter_per_sample(peft_tiny, tmp_path):
    """The batched per-row merge gives what loading each sample's merged adapter gives, in both forms."""
    import torch

    model, tok = peft_tiny
    samples = toy_samples()
    apa = APA(model, tok, CFG, tmp_path / "batched", APAConfig(n_shards=3, top_k=2, temperature=0.05), seed=0,
              embedder=hashing_embedder)  # fmt: skip
    apa.fit(samples)
    weights = apa.weights(samples)
    assert len({w.tobytes() for w in weights}) > 3  # rows really carry different merges within a batch
    merged = {mode: apa.predict_merged(samples, mode) for mode in ("d", "nd")}
    x = torch.randn(2, 5, model.config.hidden_size)
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    before = q(x)
    for mode in ("d", "nd"):
        batched = apa.predict(samples, mode)
        np.testing.assert_allclose(batched, merged[mode], atol=2e-6)
        assert abs(batched[0] - apa.predict(samples[:1], mode)[0]) < 2e-6  # a row does not depend on its batch
    assert np.abs(merged["d"] - merged["nd"]).max() > 1e-6
    # the module forwards are restored and the adapter's own weights untouched
    torch.testing.assert_close(q(x), before, atol=0, rtol=0)
    assert apa.predict([], "d").shape == (0,)
    with pytest.raises(ValueError, match="mode"):
        apa.predict(samples, "x")  # type: ignore[arg-type]


def test_query_embeddings_are_computed_once_per_text(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples(n_users=3)
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return hashing_embedder(texts)

    apa = APA(model, tok, CFG, tmp_path / "emb", APAConfig(n_shards=2), seed=0, embedder=counting)
    apa.fit(samples)
    calls.clear()
    w1 = apa.weights(samples[:4])
    w2 = apa.weights(samples[:6])
    assert calls == [4, 2]  # the second call embeds only the two new samples
    np.testing.assert_array_equal(w1, w2[:4])


def test_shared_init_keeps_apa_d_within_0_01_auc_of_apa_nd(peft_tiny, tmp_path):
    """One LoRA init for all shards: averaging A and B (D) then ≈ averaging B·A (ND); separate inits break it."""
    from recaudit.tallrec.evaluate import evaluate_scores

    model, tok = peft_tiny
    train, test = toy_samples(n_users=8, per_user=8), toy_samples(n_users=6, per_user=6, seed=5)
    y = [s.label for s in test]
    cfg = CFG.replace(lr=3e-2, epochs=2)
    out = {}
    for shared in (True, False):
        apa = APA(model, tok, cfg, tmp_path / f"init_{shared}", APAConfig(n_shards=3, top_k=2, temperature=0.5, shared_init=shared),
                  seed=0, embedder=hashing_embedder)  # fmt: skip
        apa.fit(train)
        d, nd = apa.predict(test, "d"), apa.predict(test, "nd")
        out[shared] = (abs(evaluate_scores(y, d)["auc"] - evaluate_scores(y, nd)["auc"]), np.abs(d - nd).max())
        starts = {str(apa.shards.state(k)) for k in range(3)}
        assert len(starts) == 3  # the shards did train to different adapters
    assert out[True][0] <= 0.01
    assert out[False][0] > 0.01  # the old per-shard init: the same check fails
    assert out[True][1] < out[False][1] / 2


def test_user_hash_partition_is_whole_pipeline_exact(peft_tiny, tmp_path):
    """Re-running the whole pipeline on D minus u gives the same partition and bit-identical shard files."""
    from recaudit.unlearning.partition import user_hash_partition

    model, tok = peft_tiny
    samples = toy_samples(n_users=8, per_user=6)
    cfg = APAConfig(n_shards=3, top_k=2, partition="user_hash")
    assert cfg.exactness == "whole-pipeline exact" and APAConfig().exactness == "fixed-partition exact"
    apa = APA(model, tok, CFG, tmp_path / "first", cfg, seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    before = {i.shard: file_sha256(i.path) for i in apa.shards.shards}
    victim = "4"
    stats = apa.unlearn(lambda s: s.user_id == victim)
    owner = int(user_hash_partition([victim], 3, "apa/0").assignment[0])
    assert stats.affected_shards == [owner]
    rest = [s for s in samples if s.user_id != victim]
    again = APA(model, tok, CFG, tmp_path / "again", cfg, seed=0, embedder=hashing_embedder)
    again.fit(rest)
    for a, b in zip(apa.shards.shards, again.shards.shards):
        assert a.keys == b.keys  # same partition, same order
        assert file_sha256(a.path) == file_sha256(b.path)  # bit-identical shards, affected one included
        if a.shard != owner:
            assert file_sha256(a.path) == before[a.shard]
    np.testing.assert_allclose(apa.centroids, again.centroids, atol=1e-12)


def test_manifest_holds_no_plain_user_id(peft_tiny, tmp_path):
    model, tok = peft_tiny
    samples = toy_samples(n_users=3)
    apa = APA(model, tok, CFG, tmp_path / "m", APAConfig(n_shards=2), seed=0, embedder=hashing_embedder)
    apa.fit(samples)
    import json

    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    keys = [k for s in manifest["shards"] for k in s["keys"]]
    assert len(keys) == len(samples) and all(isinstance(k, str) and len(k) == 64 for k in keys)
    assert not any(isinstance(k, list) for k in keys)
