"""The one TrainConfig nested in FederatedSettings and in the federated check's params (flat keys still work)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from recaudit.federated.check import FederatedCheck
from recaudit.federated.config import FederatedSettings
from recaudit.tallrec.config import TrainConfig

NESTED = {"lora_r": 16, "lr": 5e-4, "epochs": 2, "batch_size": 2, "max_length": 128,
          "target_modules": ["q_proj", "k_proj", "v_proj"]}


def test_nested_train_lands_on_the_flat_flower_keys():
    s = FederatedSettings(train=NESTED)
    assert (s.lora_r, s.lr, s.local_epochs, s.batch_size, s.max_length) == (16, 5e-4, 2, 2, 128)
    assert s.target_modules == "q_proj,k_proj,v_proj" and s.lora_alpha == 16  # not given: TrainConfig()'s
    wire = s.to_flwr_config()
    assert "train" not in wire and wire["local-epochs"] == 2 and wire["target-modules"] == "q_proj,k_proj,v_proj"
    # the old flat keys say the same thing
    assert s == FederatedSettings(lora_r=16, lr=5e-4, local_epochs=2, batch_size=2, max_length=128,
                                  target_modules="q_proj,k_proj,v_proj")


def test_train_config_round_trips():
    t = TrainConfig(lora_r=4, lora_alpha=32, target_modules=("q_proj", "o_proj"), lr=2e-4, epochs=3, batch_size=2,
                    max_length=96)
    s = FederatedSettings(train=t)
    assert s.train_config() == t
    assert FederatedSettings.from_flwr_config(s.to_flwr_config()).train_config() == t  # through Flower's wire too
    seeded = t.replace(seed=7)
    assert FederatedSettings(seed=7, train=seeded).train_config() == seeded
    # a full TrainConfig (every field set, as replace() gives) is fine while the unsent fields keep their defaults
    assert FederatedSettings(train=FederatedSettings().train_config().replace(epochs=3)).local_epochs == 3


def test_the_same_value_flat_and_nested_is_fine_a_different_one_is_an_error():
    assert FederatedSettings(lr="0.0005", train={"lr": 5e-4}).lr == 5e-4  # Flower config values may be strings
    assert FederatedSettings(target_modules="q_proj, v_proj", train={"target_modules": ["q_proj", "v_proj"]})
    with pytest.raises(ValidationError, match=r"local_epochs=3 vs train\.epochs=2"):
        FederatedSettings(local_epochs=3, train={"epochs": 2})
    with pytest.raises(ValidationError, match=r"target_modules='q_proj' vs train\.target_modules='q_proj,v_proj'"):
        FederatedSettings(target_modules="q_proj", train={"target_modules": ["q_proj", "v_proj"]})


def test_nested_train_is_validated_by_train_config():
    with pytest.raises(ValidationError, match=r"train\.lr: Input should be greater than 0"):
        FederatedSettings(train={"lr": 0})
    with pytest.raises(ValidationError, match="not one string"):
        FederatedSettings(train={"target_modules": "q_proj"})
    with pytest.raises(ValidationError, match=r"train\.bogus: Extra inputs are not permitted"):
        FederatedSettings(train={"bogus": 1})


def test_fields_the_wire_does_not_carry_must_keep_their_default():
    assert FederatedSettings(train={"lora_dropout": 0.0}).train_config().lora_dropout == 0.0
    with pytest.raises(ValidationError, match=r"train\.lora_dropout would be ignored"):
        FederatedSettings(train={"lora_dropout": 0.05})
    with pytest.raises(ValidationError, match=r"train\.lora_dropout, train\.loss_on would be ignored"):
        FederatedSettings(train=TrainConfig.tallrec())  # lr 1e-4 would travel; dropout and sequence loss not


def test_train_seed_must_be_the_run_seed():
    assert FederatedSettings(seed=3, train={"seed": 3}).train_config().seed == 3
    with pytest.raises(ValidationError, match="set seed, not train.seed"):
        FederatedSettings(train={"seed": 3})


def _settings(params: dict, strategy: str = "pplr") -> FederatedSettings:
    return FederatedCheck(params).settings(Path("/fed"), strategy)


def test_check_params_take_train_nested_over_the_checks_preset():
    default = _settings({})
    assert (default.max_length, default.batch_size, default.lr, default.local_epochs) == (256, 4, 1e-3, 1)
    s = _settings({"train": {"lora_r": 16, "lr": 5e-4, "epochs": 2, "target_modules": ["q_proj", "k_proj"]}})
    assert (s.lora_r, s.lr, s.local_epochs, s.target_modules) == (16, 5e-4, 2, "q_proj,k_proj")
    assert (s.max_length, s.batch_size) == (256, 4)  # the preset's, not TrainConfig()'s 512 / 8
    p = FederatedCheck({"seed": 4, "train": {"epochs": 2}}).params
    assert p.train == TrainConfig(max_length=256, batch_size=4, epochs=2, seed=4)
    assert _settings({"seed": 4}).train_config().seed == 4
    with pytest.raises(ValidationError, match="set seed, not train.seed"):
        FederatedCheck({"train": {"seed": 4}})
    with pytest.raises(ValidationError, match=r"train\.epochs"):
        FederatedCheck({"train": {"epochs": 0}})
    with pytest.raises(ValidationError, match=r"train\.loss_on would be ignored"):
        FederatedCheck({"train": {"loss_on": "sequence"}})


def test_check_params_flat_settings_keys_still_work_and_move_under_train():
    p = FederatedCheck({"settings": {"lr": 5e-4, "local_epochs": 2, "target_modules": "q_proj,k_proj",
                                     "max_length": 128, "dp_delta": 1e-6}}).params
    assert (p.train.lr, p.train.epochs, p.train.target_modules, p.train.max_length) == (5e-4, 2, ("q_proj", "k_proj"),
                                                                                      128)
    assert p.settings == {"dp_delta": 1e-6}
    s = _settings(p.model_dump())
    assert (s.lr, s.local_epochs, s.max_length, s.batch_size, s.dp_delta) == (5e-4, 2, 128, 4, 1e-6)
    # the nested form inside settings too
    assert _settings({"settings": {"train": {"lora_r": 32}}}).lora_r == 32
    # one field twice: the same value is fine, a different one names both places
    assert _settings({"train": {"lr": 5e-4}, "settings": {"lr": 0.0005}}).lr == 5e-4
    with pytest.raises(ValidationError, match=r"train\.epochs=2 and settings\.local_epochs=3"):
        FederatedCheck({"train": {"epochs": 2}, "settings": {"local_epochs": 3}})
    with pytest.raises(ValidationError, match=r"settings\.train\.lr=0\.01 and settings\.lr=0\.02"):
        FederatedCheck({"settings": {"train": {"lr": 0.01}, "lr": 0.02}})
    with pytest.raises(ValidationError, match=r"settings\.local_epochs: Input should be greater than or equal to 1"):
        FederatedCheck({"settings": {"local_epochs": 0}})
