"""The one parser for ranked lists written by an LLM, and the one title normaliser for matching.

``parse_list(text, k, mode)`` turns a completion such as ::

    Sure! Here are some movies you might like:
    1. **Inception** (2010) - a mind-bending heist
    2) "The Matrix" by the Wachowskis
    3: Interstellar: a space epic that explores love and time.

into ``["Inception", "The Matrix", "Interstellar"]`` with a status ("ok" when at least ``k`` items
were found, "short" when fewer, "empty" when none) so probes can report the parse rate.

Two modes:

``"robust"`` (default) — the recaudit parser. In order, it tries
  1. a JSON array (bare, inside a ```json fence, or under any key of a JSON object); array
     elements may be strings or objects with a title/name-like key;
  2. list lines: numbered (``1.`` ``1)`` ``1:`` ``(1)`` ``[1]`` ``#1`` ``1 -``) or bulleted
     (``-`` ``*`` ``•`` ``–`` ``—`` ``·`` ``+``), prose lines before/after/between are ignored;
     several numbered items on one line (``1. A 2. B 3. C``) are split when the numbers run on;
  3. without list lines: two or more double-quoted titles; else one title per short line;
     else one comma/semicolon-separated line (text after the last ':' of a sentence such as
     "I recommend: A, B and C."); else a lone quoted title in prose as a one-item list.
  Each candidate is then cleaned (``clean_item``): markdown links, balanced bold/italic
  spans and backticks removed (a censored "B*****t" stays); a leading bold or quoted span is taken as the title; a parenthesis
  (``(1994)``, ``(feat. X)``) not at the start and everything after it is dropped; a trailing explanation or credit is cut (rules
  below); surrounding punctuation stripped. With a numbered list, bulleted lines are details
  of the numbered items and ignored, unless every numbered line is a heading ending in ':'. Duplicates (same ``normalize_title`` key) keep
  their first occurrence and are counted; the list is truncated to ``k``.

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

``"fairllm-notebook"`` — reproduces the official FaiRLLM notebook's ``clean`` (process.ipynb in
jizhi-zhang/FaiRLLM) step by step: lowercase; drop apostrophes and newlines; split on
``\\d+\\. `` and discard the text before the first number; cut each piece at its first '-';
when a piece contains '"', keep its first quoted string (or drop the quotes when none is
closed); strip spaces. No de-duplication (``duplicates_removed`` is 0) and empty pieces are
kept, as in the notebook; the list is truncated to ``k`` like the notebook's ``[:top_k]``.
``fairllm_match_key`` is the notebook's ``simplified_list`` step (remove parenthesised text
and all spaces) used to compare items in that variant.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

ParseMode = Literal["robust", "fairllm-notebook"]
ParseStatus = Literal["ok", "short", "empty"]

__all__ = [
    "ParsedList",
    "parse_list",
    "normalize_title",
    "clean_item",
    "fairllm_clean",
    "fairllm_match_key",
    "written_year",
    "split_year",
]


@dataclass(frozen=True)
class ParsedList:
    """Parsed items (at most k), parse status, candidates found, duplicates dropped.

    ``years`` and ``uncut`` are aligned with ``items`` (empty when the parse did not record
    them, e.g. in notebook mode): the year written beside each title ("Sabrina (1954)",
    "Sabrina, 1954", "Sabrina [1954]"; None when none), and the whole entry before any cut
    (markdown and a trailing ", 1959" removed: "North by Northwest (1959)" where ``items`` has "North"),
    which the Grounder prefers when it is itself a catalogue title. They take no part in
    equality. De-duplication stays by title key alone: a list keeps one "Sabrina".
    """

    items: list[str]
    status: ParseStatus
    n_candidates: int
    duplicates_removed: int
    years: tuple[int | None, ...] = field(default=(), compare=False)
    uncut: tuple[str, ...] = field(default=(), compare=False)

    def year_of(self, i: int) -> int | None:
        """The year written beside item ``i`` (None when none or not recorded)."""
        return self.years[i] if i < len(self.years) else None

    def uncut_of(self, i: int) -> str:
        """Item ``i`` before the description cuts (the item itself when not recorded)."""
        return self.uncut[i] if i < len(self.uncut) else self.items[i]

    @property
    def ok(self) -> bool:
        """True when the list reached k items (or any items when k was None)."""
        return self.status == "ok"


def parse_list(text: str | None, k: int | None = None, mode: ParseMode = "robust") -> ParsedList:
    """Parse an LLM's ranked-list answer into at most ``k`` titles (see the module docstring)."""
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ValueError(f"k must be a positive integer or None, got {k!r}")
    if mode not in ("robust", "fairllm-notebook"):
        raise ValueError(f"mode must be 'robust' or 'fairllm-notebook', got {mode!r}")
    if text is None or not str(text).strip():
        return ParsedList([], "empty", 0, 0)
    text = str(text)
    years: tuple[int | None, ...] = ()
    uncut: tuple[str, ...] = ()
    if mode == "fairllm-notebook":
        candidates = fairllm_clean(text)
        items, removed = candidates, 0
    else:
        cleaned = [c for c in (_clean(raw) for raw in _robust_candidates(text)) if normalize_title(c.title)]
        candidates = [c.title for c in cleaned]
        kept, removed = _dedupe(cleaned)
        items = [c.title for c in kept]
        years = tuple(c.year for c in kept)
        uncut = tuple(c.uncut for c in kept)
    if k is not None:
        items, years, uncut = items[:k], years[:k], uncut[:k]
    if not items:
        status: ParseStatus = "empty"
    elif k is not None and len(items) < k:
        status = "short"
    else:
        status = "ok"
    return ParsedList(list(items), status, len(candidates), removed, years, uncut)


# ---------------------------------------------------------------------------------------------
# Title normalisation (the one matcher key)

_ARTICLES_EN = ("the", "a", "an")
# Trailing articles as MovieLens writes them ("Usual Suspects, The", "Cité des enfants perdus, La").
_TRAILING_ARTICLE = re.compile(
    r",\s*(the|a|an|la|le|les|l['’]?|il|el|los|las|der|die|das|den|det|de)\s*$", re.IGNORECASE
)
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}")
_JOINERS = re.compile(r"['’‘`´.\-‐‑–—]")  # removed without a space: don't → dont, X-Men → xmen
_NON_WORD = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1 << 16)
def normalize_title(s: str) -> str:
    """Matching key: NFKC + casefold, no accents, no (…)/[…] text, articles, punctuation; single spaces.

    "Usual Suspects, The (1995)", "The Usual Suspects" and "usual suspects" all map to
    "usual suspects"; "Amélie" → "amelie"; "X-Men" → "xmen"; "Simon & Garfunkel" → "simon and garfunkel".
    A title that is only an article ("A") keeps it.
    """
    if not s:
        return ""
    t = unicodedata.normalize("NFKC", str(s)).casefold()
    t = "".join(ch for ch in unicodedata.normalize("NFKD", t) if not unicodedata.combining(ch))
    t = unicodedata.normalize("NFKC", t)
    t = _PARENS.sub(" ", t).strip() or re.sub(r"[()\[\]{}]", " ", t)  # "[REC]" is all brackets: keep its text
    t = _SPACES.sub(" ", t).strip()
    m = _TRAILING_ARTICLE.search(t)
    if m:  # "Enfer, L'" → "l'enfer", as "L'Enfer" is written (also when the apostrophe was stripped)
        art = m.group(1)
        t = (f"{art}{t[: m.start()]}" if art in ("l", "l'", "l’") else f"{art} {t[: m.start()]}").strip()
    t = t.replace("&", " and ")
    t = _JOINERS.sub("", t)
    t = _NON_WORD.sub(" ", t)
    t = _SPACES.sub(" ", t).strip()
    head, _, rest = t.partition(" ")
    if head in _ARTICLES_EN and rest:
        t = rest
    return t


# ---------------------------------------------------------------------------------------------
# FaiRLLM notebook reproduction


def fairllm_clean(text: str) -> list[str]:
    """The official FaiRLLM notebook's ``clean`` step, reproduced (module docstring)."""
    s = re.sub(r"['\n]", "", text.lower())
    pieces = re.split(r"\d+\. ", s)[1:]
    out = []
    for piece in pieces:
        dash = piece.find("-")
        if dash > -1:
            piece = piece[:dash]
        if '"' in piece:
            quoted = re.findall(r'"([^"]*)"', piece)
            piece = quoted[0] if quoted else piece.replace('"', "")
        out.append(piece.strip(" "))
    return out


def fairllm_match_key(item: str) -> str:
    """The notebook's ``simplified_list`` step: remove parenthesised text and all spaces."""
    return re.sub(r"[ ]", "", re.sub(r"\([^)]*\)", "", item))


# ---------------------------------------------------------------------------------------------
# Robust mode: finding candidates

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_NUMBERED = re.compile(
    r"""^\s*(?:
        [(\[]\s*\d{1,3}\s*[)\]][.:]?            # (1)  [1]
      | \#\s*\d{1,3}[.):]?                      # #1  #1.
      | (?:no\.?|number|rank|song|movie|track|film|title)\s*\d{1,3}\s*[.):-]  # Song 1:
      | \d{1,3}\s*(?:\.\)|[.):\]]|\s[-–—])      # 1.  1)  1:  1]  1.)  1 -
      | \d{1,3}\.(?=["“'‘*_A-Za-z])             # 1.Title
    )\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•–—·▪►✓+]|\u2023|\u2043)\s+")
_INLINE_NUMBER = re.compile(r"(?:(?<=\s)|^)(\d{1,3})[.)]\s+")
_DQUOTED = re.compile(r"“([^”\n]+)”|\"([^\"\n]+)\"|«([^»\n]+)»|„([^“”\n]+)[“”]")
_TITLE_KEYS = ("title", "name", "song", "movie", "film", "track", "song_title", "movie_title", "item")


def _robust_candidates(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    items = _json_candidates(text)
    if items:
        return items
    text = _FENCE.sub(lambda m: m.group(1), text).replace("```", "\n")
    lines = [seg for line in text.split("\n") for seg in _split_inline_numbering(line)]
    numbered = [(i, _NUMBERED.sub("", ln, count=1)) for i, ln in enumerate(lines) if _NUMBERED.match(ln)]
    bullets = [(i, _BULLET.sub("", ln, count=1)) for i, ln in enumerate(lines) if _BULLET.match(ln)]
    if numbered and bullets and all(c.rstrip().endswith(":") for _, c in numbered):
        listed = bullets  # numbered headings ("1. Pop:") over bulleted titles
    elif numbered:
        listed = numbered  # bullets beside a numbered list are details ("   - Label: EMI")
    else:
        listed = bullets
    contents = [c.strip() for _, c in listed if c.strip()]
    if contents:
        titles = [c for c in contents if not c.endswith(":")]
        return titles or contents
    return _unlisted_candidates(text)


def _split_inline_numbering(line: str) -> list[str]:
    """'1. A 2. B 3. C' → ['1. A', '2. B', '3. C'] when the numbers run on consecutively."""
    # a number inside brackets is part of a title: "1. Road Warrior, The (Mad Max 2) (1981)"
    marks = [m for m in _INLINE_NUMBER.finditer(line) if not _inside_brackets(line, m.start())]
    if len(marks) < 2:
        return [line]
    run = [marks[0]]
    for m in marks[1:]:
        if int(m.group(1)) == int(run[-1].group(1)) + 1:
            run.append(m)
    if len(run) < 2:
        return [line]
    cuts = [m.start() for m in run]
    segments = [line[: cuts[0]]] if line[: cuts[0]].strip() else []
    segments += [line[a:b] for a, b in zip(cuts, cuts[1:] + [len(line)])]
    return segments


def _inside_brackets(line: str, at: int) -> bool:
    head = line[:at]
    return head.count("(") > head.count(")") or head.count("[") > head.count("]")


def _json_candidates(text: str) -> list[str]:
    blobs = [m.group(1) for m in _FENCE.finditer(text)]
    for open_, close in (("[", "]"), ("{", "}")):
        # a bare JSON value must open a line: "Alien [1979]" is a title, not an array
        start = re.search(rf"(?m)^\s*\{open_}", text)
        b = text.rfind(close)
        if start and start.end() - 1 < b:
            blobs.append(text[start.end() - 1 : b + 1])
    for blob in blobs:
        try:
            data = json.loads(blob)
        except (ValueError, RecursionError):
            continue
        items = _json_titles(data)
        if items:
            return items
    return []


def _json_titles(data: object) -> list[str]:
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list):
                found = _json_titles(value)
                if found:
                    return found
        return []
    if not isinstance(data, list):
        return []
    out = []
    for el in data:
        if isinstance(el, str):
            out.append(el)
        elif isinstance(el, dict):
            lowered = {str(key).lower(): v for key, v in el.items()}
            key = next((key for key in _TITLE_KEYS if isinstance(lowered.get(key), str)), None)
            if key is None:
                key = next((key for key, v in lowered.items() if isinstance(v, str)), None)
            if key is not None:
                out.append(lowered[key])
    return out


def _unlisted_candidates(text: str) -> list[str]:
    quoted = [next(g for g in m.groups() if g) for m in _DQUOTED.finditer(text)]
    if len(quoted) >= 2:
        return quoted
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    short = [ln for ln in lines if not ln.endswith((":", "!", "?")) and not _is_prose(ln)]
    if len(short) >= 2 and len(short) >= len(lines) - 2:
        return short
    best: list[str] = []
    for ln in lines:
        body = ln.rsplit(": ", 1)[-1] if ": " in ln else ln
        parts = _split_separated(body)
        if len(parts) > len(best) and all(len(p.split()) <= _MAX_TITLE_WORDS for p in parts):
            best = parts
    if len(best) >= 2:
        return best
    if len(lines) == 1 and len(lines[0].split()) <= 8:
        return lines
    return quoted


_MAX_TITLE_WORDS = 8  # longer comma-separated parts or lines read as prose, not titles


def _is_prose(line: str) -> bool:
    words = line.split()
    return len(words) > _MAX_TITLE_WORDS + 2 or (len(words) > 3 and line.rstrip().endswith("."))


def _split_separated(body: str) -> list[str]:
    body = body.strip().rstrip(".")
    sep = ";" if ";" in body else ","
    parts = [p.strip() for p in body.split(sep)]
    if len(parts) < 2:
        return []
    last = re.split(r"^(?:and|or)\s+|\s+(?:and|or)\s+", parts[-1], maxsplit=1)
    parts = parts[:-1] + [p for p in last if p and p.strip()]
    parts = [re.sub(r"^(?:and|or)\s+", "", p).strip() for p in parts]
    return [p for p in parts if p]


# ---------------------------------------------------------------------------------------------
# Robust mode: cleaning one candidate

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
class _Cleaned:
    title: str  # after every cut
    uncut: str  # before the dash, colon and " by " cuts
    year: int | None  # written beside the title


def clean_item(raw: str) -> str:
    """One list entry → the title (markdown, quotes, year, credit and explanation removed)."""
    return _clean(raw).title


@functools.lru_cache(maxsize=1 << 16)  # pure and frozen: the same list line recurs across a benchmark's answers
def _clean(raw: str) -> _Cleaned:
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
        return _Cleaned(title, uncut or title, year or _year_after(s[m.end() :]))
    paren = _PAREN_OPEN.search(s)
    if paren:  # "(1994)", "(feat. X)", "(from the album …)": annotations, dropped by matching anyway
        year = year or _year_after(s[paren.start() :])
        s = s[: paren.start()]
    s = _cut_colon(_cut_dash(s))
    m = _DQUOTED.search(s)
    if m:  # 'the song "Hello" by Adele': a quoted span before any explanation is the title
        title = _strip_edges(next(g for g in m.groups() if g))
        return _Cleaned(title, uncut or title, year)
    s = _cut_by(s)
    m = _TRAILING_YEAR.search(s)
    if m:
        year = year or int(m.group(1))
        s = s[: m.start()]
    title = _strip_edges(s)
    return _Cleaned(title, uncut or title, year)


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


def _dedupe(items: list[_Cleaned]) -> tuple[list[_Cleaned], int]:
    # by title key alone, years aside: probes compare lists by key, so a list keeps one "Sabrina"
    seen: set[str] = set()
    out = []
    for it in items:
        key = normalize_title(it.title)
        if key in seen:
            continue
        seen.add(key)
        out.append(it)
    return out, len(items) - len(out)
