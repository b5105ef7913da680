"""Name lists for user-side fairness probes: FaiRLLM's artists/directors and sensitive values, Faker names.

Shipped package data (recaudit/data/names/):
- ``defaults.json`` — 30 well-known music artists and 30 film directors (the embedded default);
  the benchmark's own 500-name lists are read from its CSVs with ``load_fairllm_names``.
- ``sensitive_attributes.json`` — FaiRLLM's 8 attributes / 31 values with their articles, the
  neutral value "a" and the typo set (short public lists from the paper).

``faker_names`` draws first names that signal gender and region from Faker's offline locale
providers (``first_names_male`` / ``first_names_female``; romanized lists for ja_JP and zh_TW,
because Faker's zh_CN romanized names carry no gender). Every record keeps its locale, country
and region, so probes can group names by the attributes they signal (Xu et al., 2023).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from recaudit.data.errors import DataFormatError

Domain = Literal["music", "movie"]
FAIRLLM_FILES = {"music": ("mtv-music-artists.csv", "name"), "movie": ("director.csv", "Director")}

# locale → (country, region). Region is continent-level; Arabic-script locales are "Middle East & North Africa".
LOCALE_REGIONS: dict[str, tuple[str, str]] = {
    "en_US": ("United States", "North America"),
    "es_MX": ("Mexico", "North America"),
    "pt_BR": ("Brazil", "South America"),
    "en_GB": ("United Kingdom", "Europe"),
    "de_DE": ("Germany", "Europe"),
    "fr_FR": ("France", "Europe"),
    "es_ES": ("Spain", "Europe"),
    "it_IT": ("Italy", "Europe"),
    "pl_PL": ("Poland", "Europe"),
    "nl_NL": ("Netherlands", "Europe"),
    "sv_SE": ("Sweden", "Europe"),
    "en_IN": ("India", "Asia"),
    "ja_JP": ("Japan", "Asia"),
    "zh_TW": ("Taiwan", "Asia"),
    "vi_VN": ("Vietnam", "Asia"),
    "id_ID": ("Indonesia", "Asia"),
    "tr_TR": ("Turkey", "Asia"),
    "yo_NG": ("Nigeria", "Africa"),
    "ig_NG": ("Nigeria", "Africa"),
    "ha_NG": ("Nigeria", "Africa"),
    "sw": ("Kenya/Tanzania", "Africa"),
    "zu_ZA": ("South Africa", "Africa"),
    "fr_DZ": ("Algeria", "Africa"),
    "en_AU": ("Australia", "Oceania"),
    "ar_AA": ("Arab world", "Middle East & North Africa"),
}
# Latin-script defaults covering five regions; romanized providers for Japanese and Chinese (Taiwan).
DEFAULT_LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "es_MX",
    "en_IN", "ja_JP", "zh_TW", "vi_VN", "yo_NG", "ig_NG", "ha_NG", "zu_ZA", "fr_DZ",
)
_ROMANIZED = {"ja_JP", "zh_TW"}

__all__ = [
    "NameRecord",
    "DEFAULT_LOCALES",
    "LOCALE_REGIONS",
    "fairllm_default_names",
    "load_fairllm_names",
    "load_sensitive_attributes",
    "SensitiveAttributes",
    "faker_names",
]


def _package_json(name: str) -> dict:
    return json.loads(resources.files("recaudit.data").joinpath("names", name).read_text(encoding="utf-8"))


def _check_domain(domain: str) -> None:
    if domain not in FAIRLLM_FILES:
        raise ValueError(f"domain must be 'music' or 'movie', got {domain!r}")


def fairllm_default_names(domain: Domain, n: int | None = None) -> list[str]:
    """The shipped default names: 30 music artists or 30 film directors (first ``n``)."""
    _check_domain(domain)
    names = list(_package_json("defaults.json")[domain])
    return names if n is None else names[: _positive(n, "n")]


def load_fairllm_names(path: str | Path, domain: Domain, n: int = 500) -> list[str]:
    """The FaiRLLM benchmark's names: first ``n`` of mtv-music-artists.csv ``name`` (stripped) or director.csv ``Director``.

    ``path`` is the CSV itself or the folder holding it.
    """
    _check_domain(domain)
    filename, column = FAIRLLM_FILES[domain]
    p = Path(path)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (expected the FaiRLLM {filename})")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataFormatError(p, None, f"not valid UTF-8 text (byte offset {e.start})") from None
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or column not in [f.strip() for f in reader.fieldnames]:
        raise DataFormatError(p, 1, f"missing column {column!r} in header {reader.fieldnames}")
    key = next(f for f in reader.fieldnames if f.strip() == column)
    names = []
    for row in reader:
        name = (row.get(key) or "").strip()
        if not name:
            raise DataFormatError(p, reader.line_num, f"empty {column!r}")
        names.append(name)
        if len(names) == _positive(n, "n"):
            break
    return names


@dataclass(frozen=True)
class SensitiveAttributes:
    """FaiRLLM's attribute → values (with articles), the neutral value and the typo set."""

    attributes: dict[str, tuple[str, ...]]
    neutral: str
    typo: tuple[str, ...]

    @property
    def n_values(self) -> int:
        return sum(len(v) for v in self.attributes.values())


def load_sensitive_attributes(path: str | Path | None = None) -> SensitiveAttributes:
    """The shipped FaiRLLM values, or the benchmark's own ``sst_json.json`` when ``path`` is given."""
    if path is None:
        data = _package_json("sensitive_attributes.json")
        attrs, neutral, typo = data["attributes"], data["neutral"], data["typo"]
    else:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataFormatError(p, e.lineno, f"invalid JSON: {e.msg}") from None
        if not isinstance(data, dict):
            raise DataFormatError(p, None, "expected a JSON object of attribute → list of values")
        typo = data.get("typo", [])
        attrs = {k: v for k, v in data.items() if k not in ("neutral", "typo")}
        neutral = "a"  # sst_json.json writes neutral as [""]; the official prompt uses "a"
        for k, v in attrs.items():
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise DataFormatError(p, None, f"attribute {k!r} must be a list of strings")
    return SensitiveAttributes(
        {k: tuple(v) for k, v in attrs.items()}, neutral, tuple(t for t in typo if t.strip())
    )


@dataclass(frozen=True)
class NameRecord:
    """One generated name with the gender and region it signals."""

    name: str
    first_name: str
    last_name: str
    gender: Literal["male", "female"]
    locale: str
    country: str
    region: str


def faker_names(
    locales: Sequence[str] | None = None, per_gender: int = 10, seed: int = 0, with_last_name: bool = True
) -> list[NameRecord]:
    """``per_gender`` distinct male and female first names per locale (names in both lists excluded), deterministic.

    Names are drawn without replacement with Faker's frequency weights where the provider has
    them; a last name from the same locale is appended when ``with_last_name``.
    """
    locales = list(DEFAULT_LOCALES if locales is None else locales)
    _positive(per_gender, "per_gender")
    unknown = [loc for loc in locales if loc not in LOCALE_REGIONS]
    if unknown:
        raise ValueError(f"locales {unknown} have no region mapping; supported: {sorted(LOCALE_REGIONS)}")
    rng = np.random.default_rng(seed)
    out: list[NameRecord] = []
    for loc in locales:
        male, female, last = _locale_lists(loc)
        country, region = LOCALE_REGIONS[loc]
        unisex = set(male) & set(female)
        for gender, pool in (("male", male), ("female", female)):
            names = {k: w for k, w in pool.items() if k not in unisex}
            if len(names) < per_gender:
                raise ValueError(f"locale {loc} has only {len(names)} unambiguous {gender} first names; lower per_gender")
            for first in _weighted_sample(names, per_gender, rng):
                surname = _weighted_sample(last, 1, rng)[0] if with_last_name else ""
                full = f"{first} {surname}".strip()
                out.append(NameRecord(full, first, surname, gender, loc, country, region))  # type: ignore[arg-type]
    return out


@lru_cache(maxsize=None)
def _locale_lists(locale: str) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    try:
        from faker import Faker
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise RuntimeError("Faker is missing; run `pip install faker`") from e
    fake = Faker(locale)
    person = next(p for p in fake.get_providers() if type(p).__module__.startswith("faker.providers.person"))
    prefix = "first_romanized_names" if locale in _ROMANIZED else "first_names"
    last_attr = "last_romanized_names" if locale in _ROMANIZED else "last_names"
    male, female = getattr(person, f"{prefix}_male", None), getattr(person, f"{prefix}_female", None)
    if not male or not female:
        raise ValueError(f"Faker locale {locale} has no gendered first-name lists")
    fix = (lambda s: "-".join(w.capitalize() for w in s.split("-"))) if locale == "zh_TW" else (lambda s: s)
    return _weights(male, fix), _weights(female, fix), _weights(getattr(person, last_attr), fix)


def _weights(names, fix) -> dict[str, float]:
    if isinstance(names, dict):
        return {fix(k): float(v) for k, v in names.items()}
    return {fix(k): 1.0 for k in names}


def _weighted_sample(weights: dict[str, float], n: int, rng: np.random.Generator) -> list[str]:
    keys = sorted(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    idx = rng.choice(len(keys), size=n, replace=False, p=p / p.sum())
    return [keys[i] for i in idx]


def _positive(n: int, name: str) -> int:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n
