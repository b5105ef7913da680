"""One TrainConfig with presets; few-shot and early stopping in the experiment and as `recaudit unlearn` flags."""

from __future__ import annotations

import pytest
from unlearning_toys import tiny_params, toy_movielens, unlearn_parser, write_ml100k

from recaudit.tallrec.config import TrainConfig
from recaudit.unlearning.data import prepare_data
from recaudit.unlearning.params import UnlearningParams

BASE = ["unlearn", "apa", "--data", "x"]


def test_presets_are_one_config_with_named_differences():
    default, tallrec, unlearning = TrainConfig(), TrainConfig.tallrec(), TrainConfig.unlearning()
    diff = lambda a, b: {k for k in TrainConfig.model_fields if getattr(a, k) != getattr(b, k)}  # noqa: E731
    assert diff(default, unlearning) == {"max_length"} and unlearning.max_length == 384
    assert diff(default, tallrec) == {"loss_on", "lr", "lora_dropout"} and tallrec.lr == 1e-4
    assert TrainConfig.unlearning(lr=0.5).max_length == 384 and TrainConfig.unlearning(lr=0.5).lr == 0.5
    with pytest.raises(ValueError, match="early_stop_patience"):
        TrainConfig(early_stop_patience=-1)
    with pytest.raises(ValueError, match="not one string"):
        TrainConfig(target_modules="q_proj")
    with pytest.raises(ValueError, match="lr"):
        TrainConfig().replace(lr=0)  # replace validates


def test_federated_settings_take_their_training_defaults_from_train_config():
    from recaudit.federated.config import FederatedSettings

    s = FederatedSettings()
    t = s.train_config()
    assert t.model_dump(exclude={"seed"}) == TrainConfig().model_dump(exclude={"seed"})
    assert FederatedSettings(local_epochs=3, lr=0.01).train_config().epochs == 3
    with pytest.raises(ValueError, match="target_modules"):
        FederatedSettings(target_modules=" , ")


def test_unlearning_params_nest_train_and_accept_the_flat_keys():
    p = UnlearningParams(seed=7)
    assert p.train == TrainConfig.unlearning(seed=7) and p.train_config().seed == 7
    flat = UnlearningParams(lr=0.01, lora_layers=2, batch_size=4)
    nested = UnlearningParams(train={"lr": 0.01, "lora_layers": 2, "batch_size": 4})
    assert flat == nested and flat.train.max_length == 384  # the preset, not TrainConfig()'s 512
    with pytest.raises(ValueError, match="either at the top level or under train"):
        UnlearningParams(lr=0.01, train={"lr": 0.02})
    with pytest.raises(ValueError, match="set seed, not train.seed"):
        UnlearningParams(seed=1, train={"seed": 2})
    with pytest.raises(ValueError, match="lorar"):
        UnlearningParams(train={"lorar": 4})
    assert UnlearningParams(**p.model_dump()) == p  # a dumped config reads back (train.seed equal to seed)


def test_cli_flags_reach_the_params():
    from recaudit.cli.unlearn import params_from_args

    p = unlearn_parser()
    args = p.parse_args(BASE + ["--train-samples", "64", "--early-stop-patience", "10", "--eval-every", "5",
                                "--valid-frac", "0.2", "--lr", "1e-4", "--max-length", "256"])  # fmt: skip
    params = UnlearningParams(**params_from_args(args))
    assert params.train_samples == 64 and params.valid_frac == 0.2
    assert (params.train.early_stop_patience, params.train.eval_every, params.train.lr, params.train.max_length) == (10, 5, 1e-4, 256)
    default = UnlearningParams(**params_from_args(p.parse_args(BASE)))
    assert default.train_samples is None and default.train.early_stop_patience == 0 and default.train.eval_every is None
    assert default.train == TrainConfig.unlearning()  # the CLI's defaults are the preset's
    with pytest.raises(SystemExit) as e:
        p.parse_args(BASE + ["--train-samples", "many"])
    assert e.value.code == 2


@pytest.mark.parametrize("flag, value, where", [
    ("--train-samples", "-3", "train_samples"),
    ("--early-stop-patience", "-1", "train.early_stop_patience"),
    ("--eval-every", "-2", "train.eval_every"),
    ("--valid-frac", "1.5", "valid_frac"),
])  # fmt: skip
def test_cli_wrong_training_value_is_one_line_and_exit_2(tmp_path, capsys, flag, value, where):
    p = unlearn_parser()
    args = p.parse_args(["unlearn", "apa", "--data", str(tmp_path), flag, value, "--out", str(tmp_path / "o.json")])
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"recaudit unlearn: {where}:"), err
    assert not (tmp_path / "o.json").exists()


def test_cli_few_shot_larger_than_the_data_is_one_line(tmp_path, capsys):
    catalog, inter = toy_movielens()
    write_ml100k(tmp_path / "ml", catalog, inter)
    args = unlearn_parser().parse_args(["unlearn", "apa", "--data", str(tmp_path / "ml"), "--users", "8", "--never-seen-users",
                                        "3", "--history-len", "3", "--train-samples", "5000", "--device", "cpu",
                                        "--workdir", str(tmp_path / "w")])  # fmt: skip
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train_samples 5000 exceeds the" in err


def test_few_shot_keeps_n_training_samples_and_forgets_users_present_in_them(tiny_lm_path):
    catalog, inter = toy_movielens(n_users=20)
    full = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=16))
    few = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=16, train_samples=8, forget_users=3))
    assert len(few.train) == 8 and all(s in full.train for s in few.train)
    assert [full.train.index(s) for s in few.train] == sorted(full.train.index(s) for s in few.train)  # input order
    assert set(few.forget_users) <= {s.user_id for s in few.train} and len(few.forget_users) == 3
    named = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=16, forget_users=few.forget_users))
    assert few.test == named.test  # the test split is the full run's
    again = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=16, train_samples=8, forget_users=3))
    assert again.train == few.train and again.forget_users == few.forget_users
    assert full.valid == [] and "valid" not in full.summary()  # no validation split unless early stopping is on


def test_early_stopping_validation_split_holds_no_forgotten_user(tiny_lm_path):
    catalog, inter = toy_movielens(n_users=20)
    data = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=16, max_per_user=6, valid_frac=0.3,
                                                    train={"early_stop_patience": 2}))  # fmt: skip
    assert data.valid and not {s.user_id for s in data.valid} & set(data.forget_users)
    keys = lambda xs: {(s.user_id, s.item_id) for s in xs}  # noqa: E731
    assert not keys(data.valid) & keys(data.train) and not keys(data.valid) & keys(data.test)
    assert data.summary()["valid"] == len(data.valid)


def test_fit_lora_uses_early_stopping_only_when_asked(monkeypatch):
    from recaudit.tallrec import trainer

    calls = []
    monkeypatch.setattr(trainer, "train_lora", lambda m, t, s, c: calls.append(("plain", len(s))) or trainer.TrainOutput())
    monkeypatch.setattr(trainer, "train_early_stopping", lambda m, t, s, v, c, every, patience: calls.append(
        ("early", len(s), len(v), every, patience)) or trainer.EarlyStopOutput(trainer.TrainOutput(), 0, 0.5))
    cfg = TrainConfig()
    trainer.fit_lora(None, None, [1, 2, 3], cfg, valid=[4, 5])  # patience 0: off even with a validation set
    trainer.fit_lora(None, None, [1, 2, 3], cfg.replace(early_stop_patience=3))  # no validation set: plain
    trainer.fit_lora(None, None, [1, 2, 3], cfg.replace(early_stop_patience=3, eval_every=2), valid=[4, 5])
    assert calls == [("plain", 3), ("plain", 3), ("early", 3, 2, 2, 3)]


def test_apa_stays_exact_with_early_stopping_and_few_shot(tiny_lm_path, tmp_path):
    from recaudit.unlearning.experiment import run_unlearning

    catalog, inter = toy_movielens(n_users=16)
    params = tiny_params(tiny_lm_path, methods=["apa"], include_original=False, n_users=12, max_per_user=5,
                         train_samples=20, valid_frac=0.3, train={"early_stop_patience": 2, "eval_every": 2})  # fmt: skip
    run = run_unlearning(catalog, inter, params, tmp_path)
    assert run.data["train"] == 20 and run.data["valid"] > 0
    assert run.exactness["retrained_bitwise_equal"] and run.exactness["untouched_byte_identical"]
    assert run.params["train"]["early_stop_patience"] == 2 and run.params["train_samples"] == 20
