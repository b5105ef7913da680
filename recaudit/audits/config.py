"""The audit config: one YAML file naming the adapter, the data, the checks and their thresholds.

    name: pre-release audit
    adapter: {kind: hf, model_path: ./my-model}
    data: {kind: movielens-100k, path: ./ml-100k}
    seed: 0
    checks:
      - check: fairllm
        params: {n_names: 20}
        thresholds: ["snsr.prag@20 <= 0.05"]

Validation happens before anything is written: structure and types (pydantic), paths that must
exist, check names against the registry, each check's parameters against its ``Params`` model,
and thresholds against the metric names a check declares. Every problem becomes one line of a
``ConfigError`` naming the key, e.g. ``checks[1].params.k: Input should be a valid integer``
(the wording is made in ``recaudit.audits.config_errors``).
Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from recaudit.adapters.spec import AdapterSpec, CallableSpec, DefaultSpec, HFSpec, import_object
from recaudit.audits.config_errors import ConfigError, format_validation_error
from recaudit.audits.verdicts import Threshold
from recaudit.checks import Check, CheckParams, load_checks
from recaudit.data.catalog import Catalog, Interactions
from recaudit.metric_names import matches_any

DEFAULT_CONFIG = "default_config.yaml"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ADAPTER_PATH_KEYS = ("path", "lora")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    if not p.exists():
        raise ValueError(f"path does not exist: {p}")
    return p


# ---------------------------------------------------------------------------------------- data


class DemoData(_Strict):
    """The small catalogue (and interactions, where shipped) that come with recaudit."""

    kind: Literal["demo"] = "demo"

    def load(self) -> tuple[Catalog | None, Interactions | None]:
        from recaudit.data import loaders

        return loaders.demo_catalog(), loaders.demo_interactions()


class MovieLensData(_Strict):
    """A MovieLens folder: ``movielens-100k`` (u.data, u.item, u.user) or ``movielens-latest-small``."""

    kind: Literal["movielens-100k", "movielens-latest-small"]
    path: Path

    _check_path = field_validator("path")(_resolve_path)

    def load(self) -> tuple[Catalog | None, Interactions | None]:
        from recaudit.data import loaders

        if self.kind == "movielens-100k":
            return loaders.load_movielens_100k(self.path)
        return loaders.load_movielens_latest_small(self.path)


class FileData(_Strict):
    """A catalogue file and optionally an interactions file (CSV or JSONL)."""

    kind: Literal["files"]
    catalog: Path
    interactions: Path | None = None

    @field_validator("catalog", "interactions")
    @classmethod
    def _exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else _resolve_path(v, info)

    def load(self) -> tuple[Catalog | None, Interactions | None]:
        from recaudit.data import loaders

        catalog = loaders.load_catalog_file(self.catalog)
        interactions = None if self.interactions is None else loaders.load_interactions_file(self.interactions)
        return catalog, interactions


DataSpec = Annotated[Union[DemoData, MovieLensData, FileData], Field(discriminator="kind")]


def load_data(spec: DemoData | MovieLensData | FileData) -> tuple[Catalog | None, Interactions | None]:
    """Load the configured data (the loaders set item popularity from the interactions)."""
    return spec.load()


# -------------------------------------------------------------------------------------- checks


def _valid_threshold(text: str) -> str:
    Threshold.parse(text)
    return text


class CheckSpec(_Strict):
    """One check of the audit: the registered ``check``, an optional unique ``name``, params, thresholds."""

    check: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    thresholds: list[Annotated[str, AfterValidator(_valid_threshold)]] = Field(default_factory=list)
    min_answered: float | None = Field(None, ge=0, le=1, description="override of the audit's min_answered")
    min_usable: float | None = Field(None, ge=0, le=1, description="override of the check's default min_usable")

    @field_validator("name")
    @classmethod
    def _file_safe(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError(f"name {v!r} must start with a letter or digit and use only letters, digits and _ . @ -")
        return v

    @property
    def label(self) -> str:
        """The check's name in results and file names (``name`` or else ``check``)."""
        return self.name or self.check

    def parsed_thresholds(self) -> list[Threshold]:
        return [Threshold.parse(t) for t in self.thresholds]


@dataclass(frozen=True)
class PlannedCheck:
    """A validated check: its class, validated params (seed filled in) and parsed thresholds."""

    spec: CheckSpec
    cls: type[Check]
    params: CheckParams
    thresholds: tuple[Threshold, ...]
    min_answered: float = 0.98
    min_usable: float = 0.5

    @property
    def name(self) -> str:
        return self.spec.label

    def instantiate(self) -> Check:
        return self.cls(self.params)


# -------------------------------------------------------------------------------------- audit


class AuditConfig(_Strict):
    """A whole audit: adapter, data, checks, seed, where to write, whether to cache."""

    name: str = "recaudit audit"
    description: str = ""
    adapter: AdapterSpec = Field(default_factory=DefaultSpec)
    data: DataSpec = Field(default_factory=DemoData)
    checks: list[CheckSpec] = Field(min_length=1)
    seed: int = 0
    output_dir: Path | None = None
    cache: bool | Path = True
    batch_size: int = Field(default=8, ge=1)
    min_answered: float = Field(
        0.98, ge=0, le=1, description="share of requests that must be answered without adapter error"
    )
    min_usable: float | None = Field(
        None, ge=0, le=1, description="share of requests that must give usable evidence (default: each check's own)"
    )
    plugins: list[str] = Field(default_factory=list, description="modules to import that register extra checks")

    @field_validator("data", mode="before")
    @classmethod
    def _data_shorthand(cls, v: Any) -> Any:
        return {"kind": "demo"} if v == "demo" else v

    @field_validator("adapter", mode="before")
    @classmethod
    def _adapter_paths(cls, v: Any, info: ValidationInfo) -> Any:
        if v == "default":
            return {"kind": "default"}
        base = (info.context or {}).get("base_dir")
        if isinstance(v, dict) and v.get("kind") == "hf" and base is not None:
            v = dict(v)
            for key in _ADAPTER_PATH_KEYS:
                value = v.get(key)
                if not isinstance(value, str):
                    continue
                p = Path(value).expanduser()
                local = p if p.is_absolute() else Path(base) / p
                if local.exists() or _looks_like_local_path(value):
                    v[key] = str(local)
        return v

    @field_validator("output_dir", mode="after")
    @classmethod
    def _output_dir(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if v is not None and not v.is_absolute() and base is not None:
            v = Path(base) / v
        return v

    @field_validator("cache", mode="after")
    @classmethod
    def _cache_path(cls, v: bool | Path, info: ValidationInfo) -> bool | Path:
        base = (info.context or {}).get("base_dir")
        if isinstance(v, Path) and not v.is_absolute() and base is not None:
            v = Path(base) / v
        return v

    def plan(self) -> list[PlannedCheck]:
        """Resolve every check against the registry; ConfigError lists every problem with its key."""
        issues: list[str] = []
        for module in self.plugins:
            try:
                importlib.import_module(module)
            except Exception as e:  # noqa: BLE001 - any import failure is a config problem to report
                issues.append(f"plugins: cannot import {module!r}: {type(e).__name__}: {e}")
        registry = load_checks()
        planned: list[PlannedCheck] = []
        first_with_name: dict[str, int] = {}
        for i, spec in enumerate(self.checks):
            where = f"checks[{i}]"
            if spec.label in first_with_name:
                issues.append(
                    f"{where}.name: checks[{first_with_name[spec.label]}] is also named {spec.label!r}; "
                    "give one a distinct 'name'"
                )
            first_with_name.setdefault(spec.label, i)
            if spec.check not in registry:
                hint = difflib.get_close_matches(spec.check, registry.names(), n=1)
                known = ", ".join(registry.names()) or "none registered"
                issues.append(
                    f"{where}.check: unknown check {spec.check!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; known: {known}"
                )
                continue
            cls = registry.get(spec.check)
            raw = dict(spec.params)
            raw.setdefault("seed", self.seed)
            try:
                params = cls.Params.model_validate(raw)
            except ValidationError as e:
                issues.extend(format_validation_error(e, raw, prefix=f"{where}.params", model=cls.Params))
                continue
            thresholds = tuple(spec.parsed_thresholds())
            declared = cls.metric_names(params)  # from the check's declared ``metrics``
            if declared is not None:
                for j, t in enumerate(thresholds):
                    if not any(matches_any(name, declared) for name, _ in t.readings()):
                        issues.append(
                            f"{where}.thresholds[{j}]: unknown metric {t.metric!r} for check {spec.check!r}; "
                            + _declared_hint(t.metric, declared)
                        )
            try:
                cls(params).validate_setup()
            except (ValueError, OSError) as e:
                issues.append(f"{where}.params: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                continue
            min_answered = spec.min_answered if spec.min_answered is not None else self.min_answered
            min_usable = next(v for v in (spec.min_usable, self.min_usable, cls.min_usable) if v is not None)
            planned.append(PlannedCheck(spec, cls, params, thresholds, min_answered, min_usable))
        if issues:
            raise ConfigError(issues)
        return planned

    def resolved_dump(self) -> dict[str, Any]:
        """The config as plain JSON-able data (paths absolute), for the reproducibility block."""
        return self.model_dump(mode="json")


def _declared_hint(metric: str, declared: list[str]) -> str:
    """What a check declares, for an unknown-metric error: all of it when short, else the closest names."""
    if len(declared) <= 12:
        return f"it produces: {', '.join(declared)}"
    close = difflib.get_close_matches(metric, declared, n=5, cutoff=0.5)
    return f"it declares {len(declared)} names" + (f"; closest: {', '.join(close)}" if close else "")


def _looks_like_local_path(value: str) -> bool:
    """A filesystem path rather than a hub id such as ``org/model`` (which the adapter resolves)."""
    return value.startswith((".", "/", "~")) or not _HUB_ID_RE.match(value)


def adapter_issues(spec: Any) -> list[str]:
    """Problems with the adapter spec found without loading a model: missing local paths, bad imports."""
    issues = []
    if isinstance(spec, HFSpec):
        for key in _ADAPTER_PATH_KEYS:
            value = getattr(spec, key)
            if value is not None and _looks_like_local_path(value) and not Path(value).exists():
                issues.append(f"adapter.{key}: path does not exist: {value}")
    elif isinstance(spec, CallableSpec):
        if not spec.generate and not spec.score:
            issues.append("adapter: a callable adapter needs 'generate', 'score' or both ('package.module:function')")
        for key in ("generate", "score"):
            value = getattr(spec, key)
            if value:
                try:
                    import_object(value)
                except ValueError as e:
                    issues.append(f"adapter.{key}: {e}")
    return issues


# --------------------------------------------------------------------------------------- load


def parse_config(raw: Any, base_dir: Path | None = None, source: str | None = None, plan: bool = True) -> AuditConfig:
    """Validate a config mapping; with ``plan`` also resolve checks against the registry."""
    if not isinstance(raw, dict):
        raise ConfigError([f"the config must be a mapping of keys (name, adapter, data, checks, ...), got {type(raw).__name__}"], source)
    try:
        config = AuditConfig.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, raw, model=AuditConfig), source) from None
    issues = adapter_issues(config.adapter)
    if plan:
        try:
            config.plan()
        except ConfigError as e:
            issues += e.issues
    if issues:
        raise ConfigError(issues, source)
    return config


def load_config(path: str | Path, plan: bool = True) -> AuditConfig:
    """Read and validate an audit config YAML file (relative paths resolve against its folder)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path}"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError([f"not UTF-8 text (byte {e.start}); save the config as UTF-8"], str(path)) from None
    except OSError as e:
        raise ConfigError([f"cannot read: {e.strerror or e}"], str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}invalid YAML: {getattr(e, 'problem', None) or e}"], str(path)) from None
    return parse_config(raw, base_dir=path.resolve().parent, source=str(path), plan=plan)


def default_config_text() -> str:
    """The embedded default config (SmolLM2-135M, demo data, small samples) as YAML text."""
    return resources.files("recaudit.audits").joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")


def load_default_config(plan: bool = True) -> AuditConfig:
    """The embedded default config; its output folder is relative to the working directory."""
    raw = yaml.safe_load(default_config_text())
    return parse_config(raw, base_dir=Path.cwd(), source=f"<embedded {DEFAULT_CONFIG}>", plan=plan)
