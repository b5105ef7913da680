"""PPLR flexible allocation: exactly the configured modules stay on the client."""

from __future__ import annotations

import numpy as np
import pytest

from recaudit.federated.allocation import (
    AllocationConfig,
    array_nbytes,
    base_parameter_split,
    count_blocks,
    module_role,
    split_names,
)


def lora_names(n_layers: int, head: bool = False) -> list[str]:
    names = [f"base_model.model.model.layers.{i}.self_attn.{m}.lora_{ab}.weight"
             for i in range(n_layers) for m in ("q_proj", "v_proj") for ab in "AB"]
    if head:
        names += [f"base_model.model.lm_head.lora_{ab}.weight" for ab in "AB"]
    return names


def test_roles():
    assert module_role("base_model.model.model.layers.12.mlp.up_proj.lora_A.weight") == ("block", 12)
    assert module_role("base_model.model.model.embed_tokens.weight") == ("embeddings", None)
    assert module_role("base_model.model.lm_head.lora_B.weight") == ("lm_head", None)
    assert module_role("base_model.model.model.norm.weight") == ("final_norm", None)
    assert module_role("transformer.h.3.attn.c_attn.weight") == ("block", 3)
    assert count_blocks(lora_names(5)) == 5


def test_first_and_last_blocks_and_head_on_client():
    names = lora_names(6, head=True)
    alloc = split_names(names, 6, AllocationConfig(first_k=1, last_k=2, lm_head=True))
    client_blocks = {module_role(n)[1] for n in alloc.client if module_role(n)[0] == "block"}
    assert client_blocks == {0, 4, 5}
    assert {n for n in alloc.client if "lm_head" in n} == {n for n in names if "lm_head" in n}
    assert len(alloc.client) == 3 * 4 + 2
    assert {module_role(n)[1] for n in alloc.server} == {1, 2, 3}
    assert set(alloc.client) | set(alloc.server) == set(names) and not set(alloc.client) & set(alloc.server)
    assert alloc.side(names[0]) == "client" and alloc.side(lora_names(6)[8]) == "server"


def test_head_flag_and_zero_k():
    names = lora_names(4, head=True)
    alloc = split_names(names, None, AllocationConfig(first_k=0, last_k=0, lm_head=False))
    assert alloc.client == ()
    alloc = split_names(names, None, AllocationConfig(first_k=0, last_k=0, lm_head=True))
    assert all("lm_head" in n for n in alloc.client) and len(alloc.client) == 2


def test_disabled_allocation_shares_everything():
    names = lora_names(4, head=True)
    alloc = split_names(names, 4, AllocationConfig(enabled=False))
    assert alloc.client == () and set(alloc.server) == set(names)
    with pytest.raises(ValueError):
        AllocationConfig(first_k=-1)


def test_split_on_a_real_peft_model(tiny_lm_path):
    from recaudit.tallrec import TrainConfig, attach_lora, init_lora_state, load_base_model

    model, _ = load_base_model(tiny_lm_path)
    model = attach_lora(model, TrainConfig(target_modules=("q_proj", "v_proj", "lm_head")))
    state = init_lora_state(model, 0)
    alloc = split_names(state, model.config.num_hidden_layers, AllocationConfig(first_k=1, last_k=0))
    # tiny model: 2 blocks; block 0 and the LM head stay, block 1 is exchanged
    assert {module_role(n) for n in alloc.client} == {("block", 0), ("lm_head", None)}
    assert {module_role(n) for n in alloc.server} == {("block", 1)}
    assert array_nbytes({k: state[k] for k in alloc.server}) == 4 * sum(state[k].numel() for k in alloc.server)
    split = base_parameter_split(model, 2, AllocationConfig(first_k=1, last_k=0))
    # tied LM head / embeddings are counted once, on the client
    unique = {p.data_ptr(): p.numel() for p in model.parameters()}
    assert split["total"] == sum(unique.values()) and 0 < split["client"] < split["total"]


def test_array_nbytes_numpy():
    assert array_nbytes({"a": np.zeros((3, 4), np.float32), "b": np.zeros(2, np.float64)}) == 48 + 16
