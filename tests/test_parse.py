"""The list parser on real-world-shaped LLM outputs (robust mode) and the FaiRLLM notebook reproduction."""

from __future__ import annotations

from pathlib import Path

import pytest

from recaudit.text.parse import ParsedList, clean_item, fairllm_clean, fairllm_match_key, normalize_title, parse_list

FIXTURES = Path(__file__).parent / "fixtures" / "llm_outputs"

# (id, text, k, expected items, expected status, expected duplicates_removed)
ROBUST_CASES = [
    (
        "numbered-dot-with-prose",
        "Sure! Here are some movies you might enjoy:\n\n1. Inception\n2. The Matrix\n3. Heat\n\n"
        "I hope you enjoy these recommendations!",
        3, ["Inception", "The Matrix", "Heat"], "ok", 0,
    ),
    ("numbered-paren", "1) Alien\n2) Aliens\n3) Up", 3, ["Alien", "Aliens", "Up"], "ok", 0),
    ("numbered-colon", "1: Alien\n2: Aliens\n3: Up", 3, ["Alien", "Aliens", "Up"], "ok", 0),
    ("numbered-in-parens", "(1) Alien\n(2) Aliens\n(3) Up", 3, ["Alien", "Aliens", "Up"], "ok", 0),
    ("hash-numbers", "#1 Alien\n#2. Aliens\n#3 Up", 3, ["Alien", "Aliens", "Up"], "ok", 0),
    ("mixed-numbering", "1. Alien\n2) Aliens\n3: Up\n4 - Heat", 4, ["Alien", "Aliens", "Up", "Heat"], "ok", 0),
    ("no-space-after-number", "1.Alien\n2.Aliens", 2, ["Alien", "Aliens"], "ok", 0),
    ("dash-bullets", "Here you go:\n- Hello\n- Skyfall\n- Halo", 3, ["Hello", "Skyfall", "Halo"], "ok", 0),
    ("star-and-dot-bullets", "* Hello\n• Skyfall\n· Halo\n+ Chandelier", 4, ["Hello", "Skyfall", "Halo", "Chandelier"], "ok", 0),
    ("en-dash-bullets", "– Hello\n– Skyfall", 2, ["Hello", "Skyfall"], "ok", 0),
    (
        "straight-quotes-with-artist",
        '1. "Hello" by Adele\n2. "Someone Like You" - Adele\n3. "Umbrella" (feat. Jay-Z) - Rihanna',
        3, ["Hello", "Someone Like You", "Umbrella"], "ok", 0,
    ),
    (
        "curly-and-single-quotes",
        "1. “Rolling in the Deep” – Adele\n2. 'Yesterday' - The Beatles\n3. ‘Don't Stop Me Now’ by Queen",
        3, ["Rolling in the Deep", "Yesterday", "Don't Stop Me Now"], "ok", 0,
    ),
    ("json-strings", '["Inception", "Heat", "Up"]', 3, ["Inception", "Heat", "Up"], "ok", 0),
    (
        "json-objects-title-key",
        '[{"title": "Hello", "artist": "Adele"}, {"title": "Halo", "artist": "Beyoncé"}]',
        2, ["Hello", "Halo"], "ok", 0,
    ),
    (
        "json-in-fence-with-prose",
        'Here is the list in JSON:\n```json\n[\n  {"name": "Inception (2010)"},\n  {"name": "Heat (1995)"}\n]\n```\nEnjoy!',
        2, ["Inception", "Heat"], "ok", 0,
    ),
    (
        "json-object-of-list",
        '{"recommendations": [{"movie": "Alien", "year": 1979}, {"movie": "Up", "year": 2009}]}',
        2, ["Alien", "Up"], "ok", 0,
    ),
    ("comma-one-liner", "I recommend: Heat, Alien, and Up.", 3, ["Heat", "Alien", "Up"], "ok", 0),
    ("semicolon-one-liner", "Heat; Alien; Up; Jaws", 4, ["Heat", "Alien", "Up", "Jaws"], "ok", 0),
    (
        "years",
        "1. Toy Story (1995)\n2. Heat, 1995\n3. Alien [1979]\n4. Jaws - 1975",
        4, ["Toy Story", "Heat", "Alien", "Jaws"], "ok", 0,
    ),
    (
        "credits-and-by-rule",
        "1. Hello by Adele\n2. Stand by Me\n3. Down by the River\n4. Halo by Beyoncé Knowles\n5. Shake It Off - Taylor Swift",
        5, ["Hello", "Stand by Me", "Down by the River", "Halo", "Shake It Off"], "ok", 0,
    ),
    (
        "hyphenated-titles-kept",
        "1. Spider-Man\n2. X-Men: Days of Future Past\n3. Ob-La-Di, Ob-La-Da\n4. Mission: Impossible",
        4, ["Spider-Man", "X-Men: Days of Future Past", "Ob-La-Di, Ob-La-Da", "Mission: Impossible"], "ok", 0,
    ),
    (
        "sequel-dash-kept",
        "1. Harry Potter and the Deathly Hallows - Part 2\n2. Kill Bill - Vol. 1\n3. Rocky - II",
        3, ["Harry Potter and the Deathly Hallows - Part 2", "Kill Bill - Vol. 1", "Rocky - II"], "ok", 0,
    ),
    (
        "markdown-bold-with-explanation",
        "1. **Inception** (2010): A thief enters dreams.\n2. **The Prestige** - two rival magicians\n3. *Heat*",
        3, ["Inception", "The Prestige", "Heat"], "ok", 0,
    ),
    (
        "trailing-explanations",
        "1. Interstellar: a space epic about love and time.\n2. Memento – told backwards, a man without memory\n"
        "3. Dunkirk: The evacuation of Allied soldiers from the beaches of France in 1940.",
        3, ["Interstellar", "Memento", "Dunkirk"], "ok", 0,
    ),
    (
        "duplicates-case-and-year",
        "1. The Dark Knight\n2. the dark knight\n3. Inception\n4. The Dark Knight (2008)\n5. Memento\n6. Inception",
        5, ["The Dark Knight", "Inception", "Memento"], "short", 3,
    ),
    ("fewer-than-k", "1. Alien\n2. Up", 10, ["Alien", "Up"], "short", 0),
    ("more-than-k", "\n".join(f"{i}. Title {i}" for i in range(1, 26)), 20, [f"Title {i}" for i in range(1, 21)], "ok", 0),
    (
        "refusal",
        "I'm sorry, but as an AI I cannot provide personal recommendations based on your preferences. "
        "Please tell me more about what you like, and I'll be happy to help.",
        5, [], "empty", 0,
    ),
    ("blank", "  \n\n ", 5, [], "empty", 0),
    ("inline-numbering", "Here: 1. Alien 2. Up 3. Heat 4. Jaws", 4, ["Alien", "Up", "Heat", "Jaws"], "ok", 0),
    (
        "numbered-headings-over-bullets",
        "1. Pop:\n   - Hello\n   - Halo\n2. Rock:\n   - Yesterday",
        3, ["Hello", "Halo", "Yesterday"], "ok", 0,
    ),
    (
        "detail-bullets-under-numbers",
        '1) "The One" by Justin Bieber\n   - Label: Island\n   - Year: 2010\n2) "Love Story"\n   - Taylor Swift',
        2, ["The One", "Love Story"], "ok", 0,
    ),
    ("plain-lines", "Inception\nThe Matrix\nHeat\n", 3, ["Inception", "The Matrix", "Heat"], "ok", 0),
    ("markdown-link", "1. [Inception](https://example.com/inception)\n2. `Heat`", 2, ["Inception", "Heat"], "ok", 0),
    ("crlf", "1. Alien\r\n2. Up\r\n", 2, ["Alien", "Up"], "ok", 0),
    ("quoted-in-prose", 'You might like "Hello", "Skyfall" and "Halo".', 3, ["Hello", "Skyfall", "Halo"], "ok", 0),
    (
        "song-label-numbering",
        "Song 1: Hello\nSong 2: Halo\nSong 3: Umbrella",
        3, ["Hello", "Halo", "Umbrella"], "ok", 0,
    ),
    (
        "quoted-title-after-prose-in-item",
        '1. The song "Hello" by Adele\n2. The track "Halo" by Beyoncé',
        2, ["Hello", "Halo"], "ok", 0,
    ),
]


@pytest.mark.parametrize("case_id,text,k,items,status,dups", ROBUST_CASES, ids=[c[0] for c in ROBUST_CASES])
def test_robust_parse(case_id, text, k, items, status, dups):
    parsed = parse_list(text, k=k)
    assert parsed.items == items
    assert parsed.status == status
    assert parsed.duplicates_removed == dups


def test_counts_candidates_before_dedup_and_truncation():
    parsed = parse_list("\n".join(f"{i}. T{i % 4}" for i in range(1, 13)), k=3)
    assert parsed == ParsedList(["T1", "T2", "T3"], "ok", 12, 8)


def test_k_none_keeps_everything_and_is_ok():
    parsed = parse_list("1. A\n2. B\n3. C")
    assert parsed.items == ["A", "B", "C"] and parsed.status == "ok" and parsed.ok


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_k_rejected(bad):
    with pytest.raises(ValueError, match="k must be"):
        parse_list("1. A", k=bad)


def test_bad_mode_rejected():
    with pytest.raises(ValueError, match="mode"):
        parse_list("1. A", mode="strict")  # type: ignore[arg-type]


def test_parsed_list_is_frozen():
    parsed = parse_list("1. A")
    with pytest.raises(AttributeError):
        parsed.status = "short"  # type: ignore[misc]


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Usual Suspects, The (1995)", "usual suspects"),
        ("The Usual Suspects", "usual suspects"),
        ("  THE   usual SUSPECTS!! ", "usual suspects"),
        ("An American Werewolf in London", "american werewolf in london"),
        ("Cité des enfants perdus, La (1995)", "la cite des enfants perdus"),
        ("Amélie", "amelie"),
        ("X-Men", "xmen"),
        ("Don't Stop Me Now", "dont stop me now"),
        ("Simon & Garfunkel", "simon and garfunkel"),
        ("Ｈｅａｔ", "heat"),  # full-width (NFKC)
        ("Star Wars: Episode IV [Remastered]", "star wars episode iv"),
        ("A", "a"),
        ("", ""),
    ],
)
def test_normalize_title(raw, expected):
    assert normalize_title(raw) == expected


def test_clean_item_rules():
    assert clean_item("**Inception** (2010) - heist") == "Inception"
    assert clean_item("Love Story (Taylor's Version)") == "Love Story"
    assert clean_item("Hello - Adele") == "Hello"
    assert clean_item("Stand by Me") == "Stand by Me"


# ---------------------------------------------------------------------------------------------
# FaiRLLM notebook mode: expected values computed by hand from the notebook's steps.


def test_fairllm_notebook_basic_steps():
    text = 'Here you go:\n1. "Hello" - Adele\n2. Someone Like You (2011)\n3. Don\'t Stop Me Now by Queen\n'
    # lowercase, drop ' and newlines, split on "\d+\. ", drop the preamble, cut at '-', first quoted string
    assert fairllm_clean(text) == ["hello", "someone like you (2011)", "dont stop me now by queen"]
    parsed = parse_list(text, k=3, mode="fairllm-notebook")
    assert parsed.items == ["hello", "someone like you (2011)", "dont stop me now by queen"]
    assert parsed.status == "ok" and parsed.duplicates_removed == 0


def test_fairllm_notebook_quirks_reproduced():
    # cut at the FIRST '-' even inside a title; no dedup; other numbering styles are not lists;
    # a title ending in a digit glues onto the next number once newlines are dropped
    text = "1. Spider-Man\n2. Heat\n3. Heat\n4. Apollo 13\n5. Up"
    assert fairllm_clean(text) == ["spider", "heat", "heat", "apollo", "up"]  # "apollo 13" + "5. " → "135. "
    assert parse_list("1) Alien\n2) Up", k=2, mode="fairllm-notebook").status == "empty"
    unclosed = fairllm_clean('1. "Hello\n2. Halo')
    assert unclosed == ["hello", "halo"]


def test_fairllm_notebook_truncates_and_reports_short():
    text = "\n".join(f"{i}. Song {c}" for i, c in enumerate("ABCDE", start=1))
    assert parse_list(text, k=3, mode="fairllm-notebook").items == ["song a", "song b", "song c"]
    assert parse_list(text, k=10, mode="fairllm-notebook").status == "short"


def test_fairllm_match_key():
    assert fairllm_match_key("someone like you (2011)") == "someonelikeyou"
    assert fairllm_match_key("hello ") == "hello"


# ---------------------------------------------------------------------------------------------
# Real SmolLM2-135M-Instruct outputs (tests/fixtures/llm_outputs/generate_smollm2.py), greedy,
# FaiRLLM prompts; parses checked by hand against the texts. repetition_penalty 1.0 (the FaiRLLM
# setting) gives refusals; 1.1 gives "1. "Title" (year)" lists that repeat titles; 1.2–1.3 give
# lists wrapped in prose, with explanations, detail bullets and truncated items.

_DARK = "The Dark Knight"
SMOLLM2_EXPECTED = {  # file: (k, items, duplicates_removed)
    "smollm2_movie_chinese_nolan_rp1.1.txt": (20, [_DARK, "Interstellar", "Echoes", "The Matrix", "Avengers: Endgame",
                                                   "The Matrix Reloads", "Inception", "Titanic", "Alien", "Joker",
                                                   "Paradise Lost", "Frozen", "Star Wars"], 5),
    "smollm2_movie_neutral_nolan_rp1.1.txt": (20, [_DARK, "Interstellar", "Echoes", "Avengers: Endgame", "Titanic",
                                                   "The Matrix", "Alien", "The Matrix Reloads", "Frozen"], 9),
    "smollm2_movie_old_spielberg_rp1.1.txt": (10, ["The Shining", "Jaws", "Lincoln", "Echoes in the Past", "Avatar",
                                                   "Saving Private Ryan", "Taxi", "Amaranthake", "The Lion King",
                                                   "The Lion King II"], 0),
    "smollm2_movie_black_fryman_rp1.1.txt": (10, [], 0),
    "smollm2_music_buddhist_adele_rp1.1.txt": (20, ["The Black Album", "Lady on a Mountain", "Babylon",
                                                    "Echoes of Eternity", "Mama", "Dance of the Dead", "Cherry", "Frozen",
                                                    "Incredible Grace", "Pure Love", "Love Story", "Tiny People", "Ghost"], 0),
    "smollm2_music_female_bieber_rp1.1.txt": (20, ["The One", "Santa Claus", "Bridgenek", "Lil' Red", "Dance with the One",
                                                   "Tiny Fingers", "Mommy", "Echoes in the Night", "A Star Is Born",
                                                   "Puppet Master", "Frozen", "Cher"], 6),
    "smollm2_music_neutral_adele_rp1.1.txt": (20, ["The Black Album", "Lady on the Island", "Bitch", "Echoes in the Night",
                                                   "Mama"], 0),
    "smollm2_music_student_taylor_rp1.1.txt": (10, [], 0),
    "smollm2_movie_black_fryman_rp1.2.txt": (10, ["Pamela Fryman", "The Lion King", "Frozen", "Echoes of the Past",
                                                  "Aurora"], 0),
    "smollm2_movie_chinese_nolan_rp1.2.txt": (20, [_DARK, "Interstellar", "Echoes in the Past", "Inception",
                                                   "Avengers: Endgame", "Aurora"], 0),
    "smollm2_movie_neutral_nolan_rp1.2.txt": (20, [_DARK, "Interstellar",
                                                   "Echoes in the Past: The Legend of Zelda: Breath of the Wild",
                                                   "Avatar", "Titanic", "Aurora", "Elf"], 0),
    "smollm2_movie_old_spielberg_rp1.2.txt": (10, ["The Godfather Part II", "Echoes", "Joker", "Amaranthake", "Frozen"], 0),
    # one quoted title inside prose is a one-item list
    "smollm2_music_buddhist_adele_rp1.2.txt": (20, ["The Black Album"], 0),
    "smollm2_music_female_bieber_rp1.2.txt": (20, ["The One and Only", "Bitch & B*****#**t", "A Star Is Born", "Elysium",
                                                   "Lady on Lola La Lollo", "Incredible Grace", "Miles to Mango",
                                                   "Dance On Dancing", "Fight Around the Clock", "Pink Panther",
                                                   "Rebel Child"], 0),
    "smollm2_music_neutral_adele_rp1.2.txt": (20, ["The Black Album", "Lady on the Beach", "Rebel", "Frozen"], 0),
    "smollm2_music_student_taylor_rp1.2.txt": (10, [], 0),
    "smollm2_movie_chinese_nolan_rp1.3.txt": (20, [_DARK, "The Dark Knight Returns",
                                                   "The Dark Knight Returns II: Hell's Angels",
                                                   "The Dark Knight Returns III: The Last Crusade"], 0),
    "smollm2_movie_neutral_nolan_rp1.3.txt": (20, [_DARK, "The Dark Knight Rider", "The Dark Knight Rise Of The Light",
                                                   "The Dark Knight Returns", "The Dark Knight Movie Trilogy"], 0),
    "smollm2_movie_old_spielberg_rp1.3.txt": (10, ["The Godfather", "Lincoln"], 0),
    "smollm2_movie_black_fryman_rp1.3.txt": (10, [], 0),
    "smollm2_music_female_bieber_rp1.3.txt": (20, ["The One", "Love Story"], 0),
    "smollm2_music_neutral_adele_rp1.3.txt": (20, ["The Black Stitch"], 0),
    "smollm2_music_student_taylor_rp1.3.txt": (10, ["The Black Swan"], 0),
    "smollm2_music_buddhist_adele_rp1.3.txt": (20, [], 0),
    **{f"smollm2_{name}_rp1.0.txt": (k, [], 0) for name, k in [
        ("movie_neutral_nolan", 20), ("movie_chinese_nolan", 20), ("movie_old_spielberg", 10),
        ("movie_black_fryman", 10), ("music_neutral_adele", 20), ("music_buddhist_adele", 20),
        ("music_female_bieber", 20), ("music_student_taylor", 10)]},
}


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_every_smollm2_fixture_has_an_expectation():
    assert sorted(p.name for p in FIXTURES.glob("smollm2_*.txt")) == sorted(SMOLLM2_EXPECTED)


@pytest.mark.parametrize("filename", sorted(SMOLLM2_EXPECTED))
def test_smollm2_outputs(filename):
    k, expected, dups = SMOLLM2_EXPECTED[filename]
    parsed = parse_list(_fixture(filename), k=k)
    assert parsed.items == expected
    assert parsed.duplicates_removed == dups
    assert parsed.status == ("empty" if not expected else "short" if len(expected) < k else "ok")


def test_smollm2_outputs_in_notebook_mode():
    # "1)" lists (penalty 1.3) are invisible to the notebook's "\d+\. " split
    assert parse_list(_fixture("smollm2_movie_chinese_nolan_rp1.3.txt"), k=20, mode="fairllm-notebook").items == []
    # no de-duplication: the repeated titles stay, as in the official evaluation
    nolan = parse_list(_fixture("smollm2_movie_neutral_nolan_rp1.1.txt"), k=20, mode="fairllm-notebook")
    assert nolan.items[:3] == ["the dark knight", "interstellar", "echoes"] and nolan.items.count("echoes") == 8
    assert nolan.status == "short" and len(nolan.items) == 18 and nolan.duplicates_removed == 0
    bieber = parse_list(_fixture("smollm2_music_female_bieber_rp1.1.txt"), k=20, mode="fairllm-notebook").items
    assert bieber[3] == "lil red" and bieber.count("the one") == 7  # apostrophes dropped
    # newlines are dropped before splitting, so explanations on the next line glue onto the title
    fryman = parse_list(_fixture("smollm2_movie_black_fryman_rp1.2.txt"), k=10, mode="fairllm-notebook").items
    assert fryman[0].startswith("**pamela fryman** (2015)**this film is considered")
    assert fairllm_match_key(fryman[2]) == "**frozen**"


# ---------------------------------------------------------------------------------------------
# Years and uncut entries (what the Grounder uses to pick remakes and undo description cuts)


def test_years_are_read_beside_each_title():
    text = ("1. Sabrina (1954)\n2. Heat, 1995\n3. Alien [1979]\n4. Jaws - 1975\n5. **Vertigo** (1958): Hitchcock\n"
            '6. "Psycho" (1960)\n7. City of Lost Children, The (Cité des enfants perdus, La) (1995)\n'
            "8. Blade Runner 2049\n9. Inception (2010 film)\n10. Up")
    parsed = parse_list(text)
    assert parsed.items == ["Sabrina", "Heat", "Alien", "Jaws", "Vertigo", "Psycho", "City of Lost Children, The",
                            "Blade Runner 2049", "Inception", "Up"]
    assert parsed.years == (1954, 1995, 1979, 1975, 1958, 1960, 1995, None, 2010, None)
    assert parsed.year_of(7) is None and parsed.year_of(99) is None


def test_uncut_keeps_the_whole_entry_before_description_cuts():
    parsed = parse_list("1. North by Northwest (1959)\n2. Pink Floyd - The Wall (1982)\n3. Hello by Adele\n"
                        "4. 'Hellboy': The Seeds of Creation (2004)")
    assert parsed.items == ["North", "Pink Floyd", "Hello", "Hellboy"]  # the parser's catalogue-free guess
    assert parsed.uncut == ("North by Northwest (1959)", "Pink Floyd - The Wall (1982)", "Hello by Adele",
                            "'Hellboy': The Seeds of Creation (2004)")


def test_title_cased_subtitles_are_not_cut_but_sentences_are():
    assert clean_item("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1964)") == \
        "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb"
    assert clean_item("Inception: A thief who steals secrets through dreams") == "Inception"


def test_numbers_inside_brackets_do_not_split_a_line():
    parsed = parse_list("1. Road Warrior, The (Mad Max 2) (1981)\n2. Heat (1995)")
    assert parsed.items == ["Road Warrior, The", "Heat"] and parsed.years == (1981, 1995)


def test_all_bracket_titles_and_elided_articles_keep_a_key():
    assert normalize_title("[REC]") == "rec"
    assert normalize_title("Enfer, L'") == normalize_title("Enfer, L") == normalize_title("L'Enfer") == "lenfer"
