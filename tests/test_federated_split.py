"""Split execution: the client runs embeddings, first/last blocks and head; the server the middle blocks."""

from __future__ import annotations

import pytest

from recaudit.federated.allocation import AllocationConfig
from recaudit.federated.split import SplitChannel, SplitClient, SplitServer, split_plan, split_step


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from recaudit.data.loaders import demo_catalog, demo_interactions
    from recaudit.tallrec import TrainConfig, attach_lora, build_samples, load_base_model
    from recaudit.tallrec.encoding import collate, encode_samples
    from recaudit.testing import tiny_causal_lm

    path = tiny_causal_lm(tmp_path_factory.mktemp("tiny4s"), num_layers=4)
    model, tok = load_base_model(path)
    model = attach_lora(model, TrainConfig(max_length=64))
    torch.manual_seed(0)
    with torch.no_grad():  # non-zero LoRA B so that every LoRA tensor gets a gradient
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    samples = build_samples(demo_interactions(), demo_catalog(), history_len=3, max_per_user=2)[:3]
    batch = collate(encode_samples(tok, samples, 64), tok.pad_token_id)
    return model, batch


def test_plan_and_bad_allocations():
    plan = split_plan(4, AllocationConfig(first_k=1, last_k=1))
    assert (plan.front, plan.middle, plan.tail) == ((0,), (1, 2), (3,))
    with pytest.raises(ValueError, match="LM head"):
        split_plan(4, AllocationConfig(lm_head=False))
    with pytest.raises(ValueError, match="no block"):
        split_plan(2, AllocationConfig(first_k=1, last_k=1))


def test_split_gradients_equal_whole_model_and_bytes_by_hand(setup):
    import torch

    from recaudit.tallrec.encoding import answer_logits, answer_nll

    model, batch = setup
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    whole = answer_nll(answer_logits(model, batch), batch).mean()
    whole.backward()
    expected = {n: p.grad.clone() for n, p in params.items()}
    model.zero_grad(set_to_none=True)

    plan = split_plan(4, AllocationConfig(first_k=1, last_k=1))
    client, server = SplitClient(model, plan), SplitServer(model, plan)
    channel = SplitChannel()
    calls = []
    hooks = [model.get_base_model().model.layers[i].register_forward_hook(lambda m, a, o, i=i: calls.append(i))
             for i in range(4)]
    try:
        loss = split_step(client, server, batch, channel)
    finally:
        for h in hooks:
            h.remove()
    assert float(loss) == pytest.approx(float(whole), rel=1e-5)
    for n, p in params.items():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-4, atol=1e-6)
    assert calls == [0, 1, 2, 3]  # each block ran once, on its own side
    b, t = batch.input_ids.shape
    d = model.config.hidden_size
    # up: h1 (float32), mask and positions (int64), grad of h2; down: h2, grad of h1
    assert channel.bytes_up == 2 * b * t * d * 4 + 2 * b * t * 8
    assert channel.bytes_down == 2 * b * t * d * 4
    # the server never receives token ids or labels: only activations, mask, positions and a gradient
    assert [name for direction, name, _ in channel.log if direction == "up"] == [
        "h1", "attention_mask", "position_ids", "grad_h2"]
