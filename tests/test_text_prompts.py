"""The one prompts module: loader, placeholder check and the {name} template syntax."""

from __future__ import annotations

import pytest

from recaudit.text.prompts import check_placeholders, escape, fill, load_prompt_file, merge_overrides, placeholders


def test_fill_is_one_pass_so_values_are_never_templates():
    # the retired sequential str.replace gave "x | x" here: a title holding a placeholder was filled again
    assert fill("{History} | {Candidates}", History="{Candidates}", Candidates="x") == "{Candidates} | x"
    assert fill("{{literal}} {a}", a="{0.__class__}") == "{literal} {0.__class__}"
    with pytest.raises(ValueError, match=r"uses \{b\} but no value"):
        fill("{a} {b}", a="1")


def test_placeholders_refuse_attribute_and_index_fields():
    assert placeholders("I am {value} fan of {name}; {k} {{x}}") == {"value", "name", "k"}
    for bad in ("{value.__class__}", "{value[0]}", "{0}"):
        with pytest.raises(ValueError, match="plain names"):
            placeholders(bad, "p")
    with pytest.raises(ValueError, match="literal brace"):
        placeholders("a lone { brace", "p")
    with pytest.raises(ValueError, match="must be a string"):
        placeholders(3, "p")  # type: ignore[arg-type]


def test_check_placeholders_exact_and_allowed():
    check_placeholders("{k} for {user}", ("k", "user"), "w")
    with pytest.raises(ValueError, match=r"w: template must use the placeholders \['k', 'user'\]; missing \['user'\], unknown \[\]"):
        check_placeholders("{k}", ("k", "user"), "w")
    check_placeholders("{history} {item_noun}", {"history"}, "w", allowed={"item_noun", "genres"})
    with pytest.raises(ValueError, match=r"may use .*unknown \['oops'\]"):
        check_placeholders("{history} {oops}", {"history"}, "w", allowed={"item_noun"})
    with pytest.raises(ValueError, match=r"<history> placeholder syntax is retired; write \{history\} instead"):
        check_placeholders("<history>", {"history"}, "w")
    check_placeholders("keep <b>bold</b> {history}", {"history"}, "w")  # angle brackets that name no placeholder are text


def test_escape_makes_plain_text_literal():
    text = 'JSON like {"a": 1}'
    assert fill(escape(text) + " {x}", x="y") == text + " y"


def test_loader_reads_package_data_and_user_files(tmp_path):
    shipped = load_prompt_file("prompt.yaml", "recaudit.tallrec")
    assert "{target}" in shipped["input"]
    path = tmp_path / "mine.yaml"
    path.write_text("input: 'Will they like {target}?'\n", encoding="utf-8")
    assert load_prompt_file(path) == {"input": "Will they like {target}?"}
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping at top level"):
        load_prompt_file(path)
    path.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_prompt_file(path)
    with pytest.raises(ValueError, match="prompt file .*nope.yaml"):
        load_prompt_file(tmp_path / "nope.yaml")


def test_merge_overrides_deep_and_unknown_keys():
    base = {"domains": {"music": {"system": "s", "user": "u"}}, "k": 1}
    out = merge_overrides(base, {"domains": {"music": {"user": "v"}}}, "p")
    assert out == {"domains": {"music": {"system": "s", "user": "v"}}, "k": 1} and base["domains"]["music"]["user"] == "u"
    with pytest.raises(ValueError, match=r"p.domains: unknown key 'movie'"):
        merge_overrides(base, {"domains": {"movie": {}}}, "p")


def test_every_shipped_prompt_file_loads_and_passes_its_check():
    from recaudit.attacks.prompts import default_prompts
    from recaudit.tallrec.prompts import alpaca_template, default_template

    p = default_prompts()
    assert "{ItemTitle}" in p.attack_rewrite and "<" not in p.ranking
    t = default_template()
    assert t.messages(["A {x}"], [], "B")[1][1].endswith('target movie "B"?')
    assert 'User Preference: "A {x}"' in t.messages(["A {x}"], [], "B")[1][1]
    assert "{target}" in alpaca_template().input and "### Response:" in alpaca_template().input
    for name in ("fairllm_prompts.yaml", "implicit_names_prompts.yaml", "item_prompts.yaml"):
        assert load_prompt_file(name, "recaudit.probes")


def test_tallrec_template_checks_its_placeholders():
    from recaudit.tallrec.prompts import PromptTemplate

    with pytest.raises(ValueError, match=r"missing \['target'\]"):
        PromptTemplate(instruction="i", input="{preference}")
    with pytest.raises(ValueError, match=r"unknown \['user'\]"):
        PromptTemplate(instruction="i", input="{user} {target}")
