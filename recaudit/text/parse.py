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
  Each candidate is then cleaned (``clean_item``; its rules — markdown, quotes, years, and which
  trailing dash, colon or " by " part is cut — are in ``recaudit.text.clean``). With a numbered list,
  bulleted lines are details of the numbered items and ignored, unless every numbered line is a
  heading ending in ':'. Duplicates (same ``normalize_title`` key) keep their first occurrence and
  are counted; the list is truncated to ``k``.

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

from recaudit.text.clean import DQUOTED, Cleaned, clean_candidate, clean_item

ParseMode = Literal["robust", "fairllm-notebook"]
ParseStatus = Literal["ok", "short", "empty"]

__all__ = [
    "ParsedList",
    "parse_list",
    "normalize_title",
    "clean_item",
    "fairllm_clean",
    "fairllm_match_key",
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
        cleaned = [c for c in (clean_candidate(raw) for raw in _robust_candidates(text)) if normalize_title(c.title)]
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
    quoted = [next(g for g in m.groups() if g) for m in DQUOTED.finditer(text)]
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


def _dedupe(items: list[Cleaned]) -> tuple[list[Cleaned], int]:
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
