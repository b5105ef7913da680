"""Cleaning one entry of an LLM's list into a title, and reading the year written beside it.

``clean_item(raw)`` is the per-entry step of ``recaudit.text.parse`` (robust mode): markdown
links, balanced bold/italic spans and backticks are removed (a censored "B*****t" stays); a
leading bold or quoted span is taken as the title; a parenthesis (``(1994)``, ``(feat. X)``) not
at the start and everything after it is dropped; a trailing explanation or credit is cut (rules
below); surrounding punctuation is stripped. ``clean_candidate`` also keeps the entry before the
cuts and the year written beside the title, which ``ParsedList`` records.

Cutting rules (documented choices, tested in tests/test_parse.py):
- spaced dash (`` - ``, `` – ``, `` — ``, ``--``) and any em dash: keep the left part
  ("Hello - Adele" → "Hello", "Inception – a heist film" → "Inception"), EXCEPT when the
  right part starts with a sequel marker (Part, Episode, Chapter, Volume, Vol., Book,
  Season, a number or a roman numeral): "Harry Potter and the Deathly Hallows - Part 2"
  stays whole. Unspaced hyphens are never cut ("Spider-Man", "Ob-La-Di, Ob-La-Da").
- ``": "``: cut when the part up to the next colon reads as an explanation — it starts with a lower-case
  letter, has six or more words and is not title-cased, or ends with . ! ? — so "Mission: Impossible",
  "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb" and
  "Star Wars: The Last Jedi" stay whole and "Inception: A film about dreams." is cut.
- a double-quoted span left after these cuts is the title ('the song "Hello" by Adele');
  as in the FaiRLLM notebook, the dash cut comes first ('Adele - "Hello"' → "Adele").
- ``" by "``: cut when the right part is a short credit — one to four words that each start
  with an upper-case letter, digit or '&' (or are "and"/"the"/"of") and whose first word is
  not a pronoun — so "Hello by Adele" → "Hello" while "Stand by Me" and "Down by the River"
  stay whole.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Cleaned", "DQUOTED", "clean_candidate", "clean_item", "split_year", "written_year"]

# a double-quoted span: the title in 'the song "Hello" by Adele'; also how unlisted answers quote titles
DQUOTED = re.compile(r"“([^”\n]+)”|\"([^\"\n]+)\"|«([^»\n]+)»|„([^“”\n]+)[“”]")

_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_LEAD_EMPH = re.compile(r"^(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1(?!\w)")
_EMPH = re.compile(r"(?<![\w*])(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1(?![\w*])")  # balanced spans only
_EDGE_EMPH = re.compile(r"^[*_]+|[*_]+$")  # stray markers left at the ends ("**Title** (2015)**")
_LEAD_QUOTE = re.compile(r"^[\"“”„«](.+?)[\"“”»](?=\W|$)|^['‘’](.+?)['’](?=[\s,.;:)\-–—]|$)")
_PAREN_OPEN = re.compile(r"(?<=\S)\s*[(\[]")
_YEAR = r"(1[89]\d\d|20\d\d)"
_TRAILING_YEAR = re.compile(rf"(?:,|\s[-–—])\s*{_YEAR}\s*$")  # "Heat, 1995", "Jaws - 1975"
_BRACKET_YEAR = re.compile(rf"(?:[(\[][^()\[\]]*[)\]]\s*)*[(\[]\s*{_YEAR}(?:\s*[)\]]|[\s,;–-])")
_LEAD_YEAR = re.compile(rf"(?:,|[-–—])\s*{_YEAR}(?!\d)")
_DASH = re.compile(r"\s+(?:-|–|—|--)\s+|—")
_SEQUEL = re.compile(
    r"^(?:part|pt\.?|episode|ep\.?|chapter|volume|vol\.?|book|season|\d+\b|[ivxlc]+\b)", re.IGNORECASE
)
_PRONOUNS = {"me", "you", "us", "him", "her", "them", "it", "my", "your", "our", "his", "their", "myself", "yourself"}
_CREDIT_WORD = re.compile(r"^(?:[A-Z0-9&À-Ý][\w'’.&-]*|and|the|of|de|van|von|la|le|feat\.?)$")


@dataclass(frozen=True)
class Cleaned:
    """One cleaned entry: the title, the entry before the cuts, and the year written beside it."""

    title: str  # after every cut
    uncut: str  # before the dash, colon and " by " cuts
    year: int | None  # written beside the title


def clean_item(raw: str) -> str:
    """One list entry → the title (markdown, quotes, year, credit and explanation removed)."""
    return clean_candidate(raw).title


@functools.lru_cache(maxsize=1 << 16)  # pure and frozen: the same list line recurs across a benchmark's answers
def clean_candidate(raw: str) -> Cleaned:
    """One list entry → its title, the entry before the cuts and the year beside it (module docstring)."""
    s, year = _MD_LINK.sub(r"\1", raw).replace("`", "").strip(), None
    m = _LEAD_EMPH.match(s)
    if m:  # "**Sabrina** (1954): …": the bold span is the title, its year may follow it
        year = _year_after(s[m.end() :])
        s = m.group(2)
    s = _EDGE_EMPH.sub("", _EMPH.sub(r"\2", s)).strip()  # "B*****#**t" (censored) stays as written
    # the whole entry, for the Grounder to try before the cuts below ("North by Northwest (1959)",
    # "'Hellboy': The Seeds of Creation", "Evangelion: 2.0 You Can (Not) Advance")
    uncut = _TRAILING_YEAR.sub("", s).strip().rstrip(".,;:").strip()  # its quotes stay: "'Hellboy': The …'
    m = _LEAD_QUOTE.match(s)
    if m:
        title = _strip_edges(m.group(1) or m.group(2))
        return Cleaned(title, uncut or title, year or _year_after(s[m.end() :]))
    paren = _PAREN_OPEN.search(s)
    if paren:  # "(1994)", "(feat. X)", "(from the album …)": annotations, dropped by matching anyway
        year = year or _year_after(s[paren.start() :])
        s = s[: paren.start()]
    s = _cut_colon(_cut_dash(s))
    m = DQUOTED.search(s)
    if m:  # 'the song "Hello" by Adele': a quoted span before any explanation is the title
        title = _strip_edges(next(g for g in m.groups() if g))
        return Cleaned(title, uncut or title, year)
    s = _cut_by(s)
    m = _TRAILING_YEAR.search(s)
    if m:
        year = year or int(m.group(1))
        s = s[: m.start()]
    title = _strip_edges(s)
    return Cleaned(title, uncut or title, year)


def _year_after(tail: str) -> int | None:
    """The year right after a title: "(1954)", "[1954]", "(1954 film)", ", 1954", " - 1954", also behind
    other brackets ("(Cité des enfants perdus, La) (1995)"); never from later text."""
    t = tail.lstrip()
    m = _BRACKET_YEAR.match(t) or _LEAD_YEAR.match(t)
    return int(m.group(1)) if m else None


_END_YEAR = re.compile(rf"(?:[(\[]\s*{_YEAR}\s*[)\]]|(?:,|\s[-–—])\s*{_YEAR})\s*$")


def written_year(title: str) -> int | None:
    """The year written at the end of a title string ("Sabrina (1954)", "Sabrina [1954]", "Sabrina, 1954")."""
    return split_year(title)[1]


def split_year(title: str) -> tuple[str, int | None]:
    """(the title without a year written at its end, that year or None)."""
    m = _END_YEAR.search(title or "")
    return (title[: m.start()].rstrip(), int(m.group(1) or m.group(2))) if m else (title, None)


def _strip_edges(s: str) -> str:
    return s.strip().strip("\"“”„«»‘’'").strip().rstrip(".,;:!?").strip()


def _cut_dash(s: str) -> str:
    for m in _DASH.finditer(s):
        tail = s[m.end() :].lstrip()
        if m.start() > 0 and not _SEQUEL.match(tail):
            return s[: m.start()]
    return s


def _cut_colon(s: str) -> str:
    colons = list(re.finditer(r":\s+", s))
    for n, m in enumerate(colons):
        # judge only the segment up to the next colon: "III: The Last Crusade: In addition, …"
        end = colons[n + 1].start() if n + 1 < len(colons) else len(s)
        segment = s[m.end() : end].strip()
        if m.start() == 0 or not segment:
            continue
        words = segment.split()
        if segment[0].islower() or segment.endswith((".", "!", "?")) or (len(words) >= 6 and not _title_case(words)):
            return s[: m.start()]
    return s.rstrip(":")


# words a title-cased subtitle leaves in lower case ("How I Learned to Stop Worrying and Love the Bomb")
_SMALL_WORDS = frozenset(
    "a an the and but or nor for so yet of in on at to by up as from with into onto over upon than via vs vs. "
    "de la le les du des da di del von van der den y e et".split()
)


def _title_case(words: list[str]) -> bool:
    """Every word but the small ones starts with a capital or a digit: a subtitle, not a sentence."""
    return all(w.lower() in _SMALL_WORDS or not w[0].isalpha() or w[0].isupper() for w in words)


def _cut_by(s: str) -> str:
    idx = s.rfind(" by ")
    if idx <= 0:
        return s
    tail = s[idx + 4 :].strip().rstrip(".")
    words = tail.split()
    if 1 <= len(words) <= 4 and words[0].lower() not in _PRONOUNS and words[0][:1].isupper():
        if all(_CREDIT_WORD.match(w) for w in words):
            return s[:idx]
    return s
