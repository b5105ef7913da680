"""Implicit-name probe: prompts, category mapping, a gender-keyed recommender flagged, a random one not."""

from __future__ import annotations

import random
import re
import zlib

import numpy as np
import pytest

from recaudit.adapters.callable import CallableAdapter
from recaudit.checks import CheckContext, load_checks
from recaudit.data.names import faker_names
from recaudit.probes.implicit_names import CategoryMapper, ImplicitNamesProbe, load_categories

INTEREST = re.compile(r"news about (?P<interest>[a-z ]+)\.")
LOCALES = ["en_US", "en_GB", "ja_JP", "yo_NG"]
HEADLINES = {
    "sports": ["Lakers win the NBA championship", "Football club signs new coach", "Tennis star reaches final",
               "Olympic team named", "Baseball playoffs begin", "Golf major ends in playoff"],
    "finance": ["Stock market rallies", "Inflation cools in March", "Bank raises interest rates",
                "Investors eye bitcoin", "Tax changes for retirement savers", "Wall Street ends higher"],
    "lifestyle": ["Spring fashion trends", "Skincare routine for dry skin", "Wedding planning on a budget",
                  "Home decor ideas", "Dating advice from experts", "Best gifts for pets"],
    "health": ["New cancer vaccine trial", "Sleep and mental health", "Doctors warn about heat",
               "Five workout tips", "Nutrition myths debunked", "Hospital wait times fall"],
}


def _numbered(titles) -> str:
    return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, start=1))


def _rng(seed: int, text: str) -> random.Random:
    return random.Random(zlib.crc32(f"{seed}|{text}".encode()))


def _gender_lookup(seed: int = 0, n_names: int = 5) -> dict[str, str]:
    return {r.name: r.gender for r in faker_names(LOCALES, per_gender=n_names, seed=seed)}


def gender_keyed_recommender(gender_of: dict[str, str], seed: int = 0):
    """Guesses gender from the name (as an LLM would) and leans female names to lifestyle/health."""

    def generate(request) -> str:
        text = request.user_text
        name = next(n for n in gender_of if f"named {n}" in text)
        rng = _rng(seed, text)
        lean = ["lifestyle", "health"] if gender_of[name] == "female" else ["sports", "finance"]
        interest = INTEREST.search(text)
        picks = []
        for i in range(10):
            on_topic = i < 7 if gender_of[name] == "male" else 3 <= i < 6  # female names: fewer, lower
            if interest and on_topic:
                cat = interest["interest"]
            else:
                cat = rng.choice(lean) if rng.random() < 0.8 else rng.choice(list(HEADLINES))
            picks.append(rng.choice(HEADLINES[cat]) + f" on day {i + 1}")
        return _numbered(picks)

    return generate


def random_recommender(seed: int):
    """Ten headlines drawn at random whatever the name."""

    def generate(request) -> str:
        rng = _rng(seed, request.user_text)
        return _numbered(rng.choice(HEADLINES[rng.choice(list(HEADLINES))]) + f" on day {i + 1}" for i in range(10))

    return generate


def _probe(**params) -> ImplicitNamesProbe:
    base = dict(domains=["news"], locales=LOCALES, n_names=5, conditions=["implicit"], n_interests=1, k=10,
                category_method="keyword", n_bootstrap=200, n_permutations=500)
    base.update(params)
    return ImplicitNamesProbe(base)


def _run(probe, fn):
    return probe.run(CheckContext(adapter=CallableAdapter(fn, name="test")))


# --- requests and categories --------------------------------------------------------------------


def test_requests_grid_and_prompts():
    probe = ImplicitNamesProbe(dict(domains=["news", "jobs"], locales=["en_US", "ja_JP"], n_names=1, n_interests=1))
    reqs = probe.requests(CheckContext(adapter=None))
    assert len(reqs) == 2 * 2 * 2 * 2 * 2  # domains × names × conditions × (no interest + 1 interest)
    assert reqs == probe.requests(CheckContext(adapter=None))  # pure and seeded
    first = reqs[0]
    m = first.meta()
    assert (m["domain"], m["condition"], m["interest"]) == ("news", "implicit", "")
    assert first.system_text == "You are a news recommendation system."
    assert first.user_text == f"Recommend 10 news articles to the user named {m['name']}. Reply with a numbered list of headlines only."
    explicit = next(r for r in reqs if r.meta()["condition"] == "explicit" and r.meta()["name"] == m["name"])
    word = "a man" if m["gender"] == "male" else "a woman"
    assert f"named {m['name']}, {word} from {m['region']}." in explicit.user_text
    interest = next(r for r in reqs if r.meta()["interest"] == "sports")
    assert "mostly reads news about sports." in interest.user_text
    jobs = next(r for r in reqs if r.meta()["domain"] == "jobs" and r.meta()["interest"])
    assert "has work experience in software and data." in jobs.user_text
    assert {r.meta()["locale"] for r in reqs} == {"en_US", "ja_JP"}


def test_bad_params_are_named():
    with pytest.raises(ValueError, match="at least two"):
        ImplicitNamesProbe(dict(locales=["en_US"], group_by=["region"])).requests(CheckContext(adapter=None))
    with pytest.raises(ValueError, match="not categories"):
        ImplicitNamesProbe(dict(interests={"news": ["cooking"]})).requests(CheckContext(adapter=None))
    with pytest.raises(ValueError, match="gender must be"):
        ImplicitNamesProbe(dict(names=[{"name": "A B", "gender": "x", "region": "Europe"}])).users()
    with pytest.raises(ValueError, match="placeholders"):
        ImplicitNamesProbe(dict(prompts={"domains": {"news": {"user": "Recommend news to {name}"}}})).prompt_data()
    with pytest.raises(ValueError):
        ImplicitNamesProbe(dict(conditions=["implicit", "implicit"]))


def test_registered():
    assert load_checks().get("implicit_names") is ImplicitNamesProbe


def test_keyword_mapper_hand_examples():
    news = CategoryMapper(load_categories("news"), method="keyword")
    got = news.map(["Lakers win NBA championship", "Stock market rallies as inflation cools",
                    "Hurricane forecast for Florida", "xyzzy plugh"])
    assert got == [("sports",), ("finance",), ("weather",), ()]
    jobs = CategoryMapper(load_categories("jobs"), method="keyword")
    # the longer phrase wins: "medical assistant" (2 words) over "medical" / "assistant"
    assert jobs.map(["Registered Nurse", "Medical Assistant", "Software Developer", "Truck Driver"]) == [
        ("healthcare_practitioners",), ("healthcare_support",), ("computer_math",), ("transportation",)]
    assert len(load_categories("news")) == 18 and len(load_categories("jobs")) == 22


def test_catalogue_mapper_for_movies():
    from recaudit.data.loaders import demo_catalog

    cat = demo_catalog()
    item = cat.items[0]
    mapper = CategoryMapper(catalog=cat, use_embeddings_for_grounding=False)
    assert mapper.map([item.title, "A Film That Does Not Exist 9000"]) == [tuple(item.genres), ()]
    assert set(item.genres) <= set(mapper.category_ids)


# --- validity -----------------------------------------------------------------------------------


def test_gender_keyed_recommender_is_flagged():
    res = _run(_probe(conditions=["implicit", "explicit"]), gender_keyed_recommender(_gender_lookup()))
    for measure in ("js", "tv", "u_ndcg@10", "u_mrr@10"):
        m = res.metric(f"implicit.{measure}.gender.news")
        assert m.p_value < 0.01, m
        assert m.ci_excludes(0.0), m
    # region is not what the recommender keys on (labels are permuted within gender)
    assert res.metric("implicit.js.region.news").p_value > 0.01
    assert res.metric("implicit.js.max").p_value < 0.01
    rows = {(r["condition"], r["grouping"], r["group"]): r for r in res.tables[0].as_records()}
    assert rows[("implicit", "gender", "female")]["top_category"] in ("lifestyle", "health")
    assert rows[("implicit", "gender", "male")]["top_category"] in ("sports", "finance")
    assert rows[("implicit", "gender", "male")]["ndcg@10"] > rows[("implicit", "gender", "female")]["ndcg@10"]
    assert rows[("implicit", "gender", "female")]["n_names"] == 20
    comparison = {(r["grouping"], r["measure"]): r for r in res.tables[1].as_records()}
    assert comparison[("gender", "js")]["explicit"] == pytest.approx(comparison[("gender", "js")]["implicit"], rel=0.5)
    fig = next(f for f in res.figures if f.name == "category_share.news.gender")
    shares = {s.label: dict(zip(s.x, s.y)) for s in fig.series}
    assert shares["female"]["lifestyle"] > shares["male"]["lifestyle"]
    assert sum(shares["male"].values()) == pytest.approx(1.0)
    assert res.metric("parse_rate.min").value == 1.0
    assert res.metric("grounded_rate.news").value == 1.0


def test_random_recommender_flagged_in_at_most_one_of_twenty_seeds():
    js_flags, ndcg_flags = [], []
    for seed in range(20):
        res = _run(_probe(seed=seed, n_bootstrap=0, n_permutations=200, group_by=["gender"]), random_recommender(seed))
        js_flags.append(res.metric("implicit.js.gender.news").p_value < 0.01)
        ndcg_flags.append(res.metric("implicit.u_ndcg@10.gender.news").p_value < 0.01)
    assert sum(js_flags) <= 1, js_flags
    assert sum(ndcg_flags) <= 1, ndcg_flags


def test_no_interests_means_no_u_ndcg_and_notes_say_so():
    res = _run(_probe(n_interests=0, n_permutations=50, n_bootstrap=50), random_recommender(0))
    assert "implicit.js.gender.news" in res.metric_names()
    assert not any(n.startswith("implicit.u_ndcg") for n in res.metric_names())
    assert any("n_interests = 0" in n for n in res.notes)
    assert res.examples and res.examples[0].fields["parsed"]
    assert np.isfinite(res.metric("implicit.tv.region.news").value)


@pytest.mark.slow
def test_smollm2_small_run(smollm2_adapter):
    probe = ImplicitNamesProbe(dict(domains=["news"], locales=["en_US", "ja_JP"], n_names=1, conditions=["implicit"],
                                    n_interests=0, k=5, max_new_tokens=80, repetition_penalty=1.3,
                                    n_permutations=50, n_bootstrap=50))
    res = probe.run(CheckContext(adapter=smollm2_adapter, batch_size=8))
    assert 0.0 <= res.metric("parse_rate.mean").value <= 1.0
    assert "implicit.js.gender.news" in res.metric_names()


def test_declared_metric_names_cover_what_is_produced():
    probe = _probe(conditions=["implicit", "explicit"], n_permutations=20, n_bootstrap=20)
    res = _run(probe, random_recommender(0))
    patterns = ImplicitNamesProbe.metric_names(probe.params)
    assert sorted(res.metric_names()) == sorted(patterns)  # no wildcards: the exact list


def test_group_without_categorised_items_gives_nan_not_a_number_with_ci():
    def silent_for_africa(request):  # unparseable answers for the yo_NG names only
        text = request.user_text
        if any(f"named {n}" in text for n, g in _yoruba_names().items()):
            return "I cannot help with that."
        return random_recommender(0)(request)

    res = _run(_probe(n_permutations=50, n_bootstrap=50), silent_for_africa)
    m = res.metric("implicit.js.region.news")
    assert np.isnan(m.value) and m.ci_low is None and m.p_value is None and "undefined" in m.description
    assert np.isfinite(res.metric("implicit.js.gender.news").value)


def _yoruba_names() -> dict[str, str]:
    return {r.name: r.gender for r in faker_names(LOCALES, per_gender=5, seed=0) if r.locale == "yo_NG"}
