"""Loaders on the real MovieLens files, malformed files, the shipped demo data and the name lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recaudit.data.catalog import Catalog
from recaudit.data.errors import DataFormatError
from recaudit.data.loaders import (
    demo_catalog,
    demo_interactions,
    display_title,
    generate_demo_interactions,
    load_catalog_file,
    load_interactions_file,
    load_movielens_100k,
    load_movielens_latest_small,
)
from recaudit.data.names import (
    DEFAULT_LOCALES,
    LOCALE_REGIONS,
    fairllm_default_names,
    faker_names,
    load_fairllm_names,
    load_sensitive_attributes,
)

# ---------------------------------------------------------------------------------------------
# Real MovieLens files


@pytest.fixture(scope="module")
def ml100k(shared_data):
    return load_movielens_100k(shared_data / "ml-100k")


def test_movielens_100k_counts_and_fields(ml100k):
    catalog, inter = ml100k
    assert (len(inter), inter.frame["user_id"].nunique(), len(catalog)) == (100_000, 943, 1682)
    assert inter.users is not None and list(inter.users.columns) == ["age", "gender", "occupation", "zip"]
    assert inter.users.loc["1"].to_dict() == {"age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}
    toy = catalog.get("1")
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", 1995, ("Animation", "Children's", "Comedy"))
    assert catalog.get("12").title == "The Usual Suspects"
    assert catalog.get("50").popularity == 583  # Star Wars: the most-rated film of MovieLens 100K
    assert sum(it.popularity for it in catalog) == 100_000
    assert inter.frame["rating"].between(1, 5).all()


def test_movielens_100k_raw_titles(shared_data):
    catalog, _ = load_movielens_100k(shared_data / "ml-100k", title_style="raw")
    assert catalog.get("12").title == "Usual Suspects, The (1995)" and catalog.get("12").year == 1995


def test_movielens_latest_small_counts_and_titles(shared_data):
    catalog, inter = load_movielens_latest_small(shared_data / "ml-latest-small")
    assert (len(inter), inter.frame["user_id"].nunique(), len(catalog)) == (100_836, 610, 9_742)
    assert catalog.get("29").title == "The City of Lost Children (La Cité des enfants perdus)"
    assert catalog.get("29").year == 1995
    assert catalog.get("1").genres == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    no_genres = [it for it in catalog if not it.genres]
    assert no_genres and all("(no genres listed)" not in it.genres for it in catalog)
    assert set(inter.frame["rating"].unique()) <= {x / 2 for x in range(1, 11)}


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Usual Suspects, The (1995)", ("The Usual Suspects", 1995)),
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Postino, Il (1994)", ("Il Postino", 1994)),
        ("Seven (a.k.a. Se7en) (1995)", ("Seven (a.k.a. Se7en)", 1995)),
        ("Postman, The (Postino, Il) (1994)", ("The Postman (Il Postino)", 1994)),
        ("Death Note: Desu nôto (2006–2007)", ("Death Note: Desu nôto", 2006)),
        ("Babylon 5", ("Babylon 5", None)),
        ("Avventura, L' (1960)", ("L'Avventura", 1960)),
        ("Toy Story (1995) ", ("Toy Story", 1995)),
    ],
)
def test_display_title(raw, expected):
    assert display_title(raw) == expected


# ---------------------------------------------------------------------------------------------
# Plain files and malformed input


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_catalog_and_interactions_csv_round_trip(tmp_path):
    cat = load_catalog_file(write(tmp_path / "items.csv", 'item_id,title,genres,year,extra\n'
                                  'a,"Heat, the remake",Action|Crime,1995,x\nb,Up,,,y\n'))
    assert [(it.item_id, it.title, it.genres, it.year) for it in cat] == [
        ("a", "Heat, the remake", ("Action", "Crime"), 1995), ("b", "Up", (), None)]
    inter = load_interactions_file(write(tmp_path / "r.csv", "user_id,item_id,rating\nu1,a,4\nu1,b,3.5\nu2,a,1\n"), cat)
    assert inter.frame["timestamp"].tolist() == [0, 1, 2]  # row order when no timestamp column
    assert cat.with_popularity(inter).get("a").popularity == 2


def test_jsonl_files(tmp_path):
    cat = load_catalog_file(write(tmp_path / "items.jsonl", '{"item_id": 1, "title": "Up", "genres": ["Animation"], "year": 2009}\n\n'
                                  '{"item_id": 2, "title": "Heat", "genres": "Action|Crime", "year": null}\n'))
    assert [(it.item_id, it.genres, it.year) for it in cat] == [("1", ("Animation",), 2009), ("2", ("Action", "Crime"), None)]
    inter = load_interactions_file(write(tmp_path / "r.jsonl", '{"user_id": 7, "item_id": 2, "rating": 5, "timestamp": 100}\n'), cat)
    assert inter.frame.iloc[0].to_dict() == {"user_id": "7", "item_id": "2", "rating": 5.0, "timestamp": 100}


@pytest.mark.parametrize(
    "name,content,line,problem",
    [
        ("items.csv", "item_id,genres\n1,Action\n", 1, "missing column(s) title"),
        ("items.csv", "item_id,title,year\n1,Up,2009\n2,Heat,nineteen\n", 3, "year must be an integer"),
        ("items.csv", "item_id,title\n1,Up\n2,Heat,extra\n", 3, "expected 2 fields, found 3"),
        ("items.csv", "item_id,title\n1,Up\n1,Heat\n", 3, "duplicate item_id '1' (first on line 2)"),
        ("items.csv", "item_id,title\n1,Up\n2,  \n", 3, "title must be a non-empty string"),
        ("items.csv", b"item_id,title\n1,Up\n2,Caf\xe9\n", 3, "not valid utf-8 text"),
        ("items.jsonl", '{"item_id": 1, "title": "Up"}\n{"item_id": 2, "title": \n', 2, "invalid JSON"),
        ("items.jsonl", '{"item_id": 1, "title": "Up"}\n["2", "Heat"]\n', 2, "expected a JSON object"),
        ("items.jsonl", '{"item_id": 1}\n', 1, "missing key(s) title"),
        ("items.csv", "", 1, "empty file"),
    ],
)
def test_malformed_catalog_files(tmp_path, name, content, line, problem):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError) as err:
        load_catalog_file(path)
    assert err.value.line == line and problem in err.value.problem
    assert str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    "content,line,problem",
    [
        ("user_id,item_id\nu1,1\n", 1, "missing column(s) rating"),
        ("user_id,item_id,rating\nu1,1,4\nu1,2,five\n", 3, "rating must be a number, got 'five'"),
        ("user_id,item_id,rating\nu1,1,nan\n", 2, "rating must be finite"),
        ("user_id,item_id,rating\nu1,99,4\n", 2, "item_id '99' is not in the catalogue"),
        ("user_id,item_id,rating,timestamp\nu1,1,4,yesterday\n", 2, "timestamp must be an integer"),
        ("user_id,item_id,rating\n,1,4\n", 2, "user_id must be a non-empty"),
    ],
)
def test_malformed_interaction_files(tmp_path, content, line, problem):
    cat = Catalog(load_catalog_file(write(tmp_path / "items.csv", "item_id,title\n1,Up\n2,Heat\n")).items)
    path = write(tmp_path / "r.csv", content)
    with pytest.raises(DataFormatError) as err:
        load_interactions_file(path, cat)
    assert (err.value.line, problem in err.value.problem) == (line, True), str(err.value)


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="unsupported file type '.xlsx'"):
        load_catalog_file(write(tmp_path / "items.xlsx", "x"))
    with pytest.raises(FileNotFoundError):
        load_catalog_file(tmp_path / "nope.csv")


def _fake_ml100k(d: Path, u_data: str, u_item_extra: str = "") -> Path:
    d.mkdir()
    flags = "|".join(["0"] * 18 + ["1"])
    write(d / "u.item", f"1|Heat (1995)|01-Jan-1995||http://x|{flags}\n2|Up (2009)|01-Jan-2009||http://y|{flags}\n" + u_item_extra)
    write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    write(d / "u.data", u_data)
    return d


def test_movielens_100k_malformed(tmp_path):
    ok = _fake_ml100k(tmp_path / "ok", "1\t1\t5\t881250949\n2\t2\t3\t881250950\n")
    catalog, inter = load_movielens_100k(ok)  # no u.genre: the standard 19 names
    assert catalog.get("1").genres == ("Western",) and len(inter) == 2
    cases = {
        "fields": ("1\t1\t5\n", "u.data", 1, "expected 4 '\\t'-separated fields, found 3"),
        "rating": ("1\t1\t5\t1\n1\t2\tx\t2\n", "u.data", 2, "rating must be a number"),
        "item": ("1\t3\t5\t1\n", "u.data", 1, "item_id '3' is not in the catalogue"),
        "user": ("9\t1\t5\t1\n", "u.data", 1, "user_id '9' is not in the user table"),
    }
    for name, (data, file, line, problem) in cases.items():
        with pytest.raises(DataFormatError) as err:
            load_movielens_100k(_fake_ml100k(tmp_path / name, data))
        assert (Path(err.value.path).name, err.value.line) == (file, line) and problem in err.value.problem, name
    bad_flags = _fake_ml100k(tmp_path / "flags", "1\t1\t5\t1\n", "3|X (1990)|||u|" + "|".join(["2"] * 19) + "\n")
    with pytest.raises(DataFormatError, match=r"u.item:3: genre flags must be 0 or 1"):
        load_movielens_100k(bad_flags)


def test_data_format_error_message_and_pickle():
    import pickle

    e = DataFormatError("a/b.csv", 7, "bad rating")
    assert str(e) == "a/b.csv:7: bad rating" and isinstance(e, ValueError)
    assert str(DataFormatError("a.csv", None, "no items")) == "a.csv: no items"
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.line, e2.problem) == ("a/b.csv", 7, "bad rating")


# ---------------------------------------------------------------------------------------------
# Shipped demo data


def test_demo_catalog_is_well_formed():
    cat = demo_catalog()
    assert 150 <= len(cat) <= 300
    assert len({it.title for it in cat}) == len(cat)
    assert all(1900 < (it.year or 0) <= 2025 and it.genres for it in cat)
    allowed = {"Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
               "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"}
    assert set(cat.genres()) == allowed
    pops = np.array([it.popularity for it in cat])
    assert pops.sum() == len(demo_interactions())
    assert pops.max() > 4 * np.median(pops)  # long tail for popularity-bias checks


def test_demo_interactions_match_their_generator():
    inter = demo_interactions()
    items = Catalog([it for it in demo_catalog()])
    frame, users = generate_demo_interactions(items)
    pd.testing.assert_frame_equal(inter.frame.reset_index(drop=True), frame.astype(inter.frame.dtypes.to_dict()))
    assert inter.users is not None and inter.users["favourite_genres"].tolist() == users["favourite_genres"].tolist()


def test_demo_users_prefer_their_genres():
    cat, inter = demo_catalog(), demo_interactions()
    genres = {it.item_id: set(it.genres) for it in cat}
    lifts = []
    for user, fav in inter.users["favourite_genres"].items():
        fav_set = set(fav.split("|"))
        hist = inter.history(user)["item_id"]
        in_hist = np.mean([bool(genres[i] & fav_set) for i in hist])
        in_cat = np.mean([bool(g & fav_set) for g in genres.values()])
        lifts.append(in_hist - in_cat)
    assert np.mean(lifts) > 0.15


# ---------------------------------------------------------------------------------------------
# Names


def test_shipped_default_names():
    assert len(fairllm_default_names("music")) == len(fairllm_default_names("movie")) == 30
    assert fairllm_default_names("movie", 2) == ["Steven Spielberg", "Christopher Nolan"]
    with pytest.raises(ValueError, match="domain"):
        fairllm_default_names("books")  # type: ignore[arg-type]


def test_fairllm_benchmark_names(shared_data):
    music = load_fairllm_names(shared_data / "fairllm", "music")
    movie = load_fairllm_names(shared_data / "fairllm" / "director.csv", "movie")
    assert len(music) == len(set(music)) == 500 and music[:2] == ["Adele", "Joey + Rory"]
    assert len(movie) == 500 and movie[0] == "Mark Cendrowski"
    assert load_fairllm_names(shared_data / "fairllm", "music", n=3) == ["Adele", "Joey + Rory", "Draaco Aventura"]


def test_fairllm_names_missing_column(tmp_path):
    with pytest.raises(DataFormatError, match="missing column 'Director'"):
        load_fairllm_names(write(tmp_path / "director.csv", "name\nX\n"), "movie")


def test_shipped_sensitive_attributes_equal_the_benchmark_file(shared_data):
    shipped = load_sensitive_attributes()
    assert len(shipped.attributes) == 8 and shipped.n_values == 31 and shipped.neutral == "a"
    original = load_sensitive_attributes(shared_data / "fairllm" / "sst_json.json")
    assert original.attributes == shipped.attributes and original.typo == shipped.typo
    raw = json.loads((shared_data / "fairllm" / "sst_json.json").read_text())
    assert shipped.attributes["physics"] == tuple(raw["physics"]) == ("fat", "thin")


def test_faker_names_records_gender_and_region():
    recs = faker_names(["en_US", "ja_JP", "zh_TW", "yo_NG"], per_gender=5, seed=3)
    assert len(recs) == 4 * 2 * 5
    assert recs == faker_names(["en_US", "ja_JP", "zh_TW", "yo_NG"], per_gender=5, seed=3)
    for loc in ("en_US", "ja_JP", "zh_TW", "yo_NG"):
        male = {r.first_name for r in recs if r.locale == loc and r.gender == "male"}
        female = {r.first_name for r in recs if r.locale == loc and r.gender == "female"}
        assert len(male) == len(female) == 5 and not male & female
    assert {r.region for r in recs} == {"North America", "Asia", "Africa"}
    assert all(r.name.isascii() for r in recs if r.locale in ("ja_JP", "zh_TW", "en_US"))  # romanized
    assert all(r.name == f"{r.first_name} {r.last_name}" for r in recs)


def test_faker_default_locales_cover_five_regions_and_reject_unknown():
    assert {LOCALE_REGIONS[loc][1] for loc in DEFAULT_LOCALES} == {"North America", "South America", "Europe", "Asia", "Africa"}
    with pytest.raises(ValueError, match="no region mapping"):
        faker_names(["xx_XX"])
    with pytest.raises(ValueError, match="per_gender"):
        faker_names(["en_US"], per_gender=0)


def test_fast_and_line_by_line_readers_agree(tmp_path):
    from recaudit.data import rows as data_rows

    cat = load_catalog_file(write(tmp_path / "items.csv", "item_id,title\n1,Up\n2,Heat\n"))
    path = write(tmp_path / "r.csv", "user_id,item_id,rating,timestamp\nu1,1,4,10\nu2,2,2.5,11\nu1,2,1,9\n")
    cols = {"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"}
    fast = data_rows.fast_interactions(path, cols, cat, "r")
    rows = ((n, r["user_id"], r["item_id"], float(r["rating"]), int(r["timestamp"]))
            for n, r in data_rows.csv_records(path, tuple(cols)))
    slow = data_rows.build_interactions(path, rows, cat, "r")
    assert fast is not None
    pd.testing.assert_frame_equal(fast.frame, slow.frame)
    # blank lines make the fast reader step aside; the result is the same
    blank = write(tmp_path / "b.csv", "user_id,item_id,rating,timestamp\nu1,1,4,10\n\nu2,2,2.5,11\nu1,2,1,9\n")
    assert data_rows.fast_interactions(blank, cols, cat, "r") is None
    pd.testing.assert_frame_equal(load_interactions_file(blank, cat).frame, slow.frame)
