"""Run an audit: the adapter behind the response cache, each check isolated, every step resumable.

The run folder holds everything a rerun needs::

    <run dir>/config.yaml          the validated config that ran
    <run dir>/cache.sqlite         every model response (CachedAdapter)
    <run dir>/checks/<name>.json   one finished check each, written atomically as it finishes
    <run dir>/checks/<name>.samples.jsonl[.gz]   its evidence: one record per model call
    <run dir>/work/<name>-<key>/   checkpoints a long check may keep (per check key)
    <run dir>/results.json         the audit (written last)

A rerun skips a check whose file exists with the same key (check, params, seed, adapter
fingerprint, data hashes, recaudit version) and whose evidence was complete (``audits.reuse``): a
check that errored, had any adapter error or too little usable evidence is recomputed, and the
response cache resends exactly the requests that failed. Thresholds are re-judged every time, so changing a threshold
never recomputes anything. When every check of a local model (``default``/``hf``) is finished, the
model is not even loaded: finished checks are keyed by the model's identity read from its files
(``adapters.identity``), so a warm re-run costs what reading the check files costs.

Nothing is written before the setup has passed: data loaded, adapter built and pre-flighted (one
cheap request; ``GET /models`` for an endpoint), cache file readable. A setup failure is one line
(``SetupError``) and leaves no run folder behind.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from rich.console import Console

import recaudit
from recaudit.adapters.base import Adapter, Request, requests_per_call
from recaudit.audits.config import AuditConfig, PlannedCheck, load_data
from recaudit.audits.files import write_text_atomic
from recaudit.audits.progress import RunProgress
from recaudit.audits.reuse import all_finished, check_key, finished_checks, rejudge_coverage, write_check_file
from recaudit.audits.verdicts import audit_exit_code, evaluate_verdict
from recaudit.checks import CheckContext, Probe
from recaudit.data.catalog import Catalog, Interactions
from recaudit.evidence import EvidenceLog
from recaudit.audits.run_info import cache_stats as _cache_stats, data_hashes as _data_hashes, now as _now
from recaudit.audits.run_info import library_versions, platform_summary, recorded_fingerprint
from recaudit.results import AuditResults, CheckResult, Reproducibility

log = logging.getLogger(__name__)

TRACEBACK_FRAMES = 4


class SetupError(RuntimeError):
    """The data or the adapter could not be loaded; nothing was written."""


@dataclass
class AuditRun:
    """The outcome of ``Runner.run``: results, where they are, what was reused."""

    results: AuditResults
    run_dir: Path
    results_path: Path
    reused: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """See ``audits.verdicts``: 0 pass, 1 breach, 2 error, 3 incomplete, 4 not judged."""
        return audit_exit_code(self.results)


def default_run_dir(config: AuditConfig) -> Path:
    """``output_dir`` or ``recaudit-runs/<slug of the audit name>``."""
    if config.output_dir is not None:
        return config.output_dir
    slug = re.sub(r"[^a-z0-9]+", "-", config.name.lower()).strip("-") or "audit"
    return Path("recaudit-runs") / slug


class Runner:
    """Runs a validated ``AuditConfig``; ``adapter`` overrides the configured one (tests, notebooks)."""

    def __init__(
        self,
        config: AuditConfig,
        *,
        run_dir: str | Path | None = None,
        adapter: Adapter | None = None,
        fresh: bool = False,
        progress: bool = True,
        console: Console | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
        self._adapter = adapter
        self.fresh = fresh
        self.progress = progress
        self.console = console or Console(stderr=True)

    @property
    def checks_dir(self) -> Path:
        return self.run_dir / "checks"

    @property
    def results_path(self) -> Path:
        return self.run_dir / "results.json"

    def cache_path(self) -> Path | None:
        if self.config.cache is False:
            return None
        return self.run_dir / "cache.sqlite" if self.config.cache is True else Path(self.config.cache)

    # ------------------------------------------------------------------------------- setup

    def _load_data(self) -> tuple[Catalog | None, Interactions | None]:
        try:
            catalog, interactions = load_data(self.config.data)
        except Exception as e:  # noqa: BLE001 - a data problem stops the run before anything is written
            raise SetupError(f"data ({self.config.data.kind}): {type(e).__name__}: {_first_line(e)}") from e
        if catalog is not None and interactions is not None:
            # Interactions store item ids as strings, as the catalogue does
            unknown = sorted(set(interactions.frame["item_id"].unique()) - set(catalog.ids))
            if unknown:
                raise SetupError(
                    f"data ({self.config.data.kind}): the interactions name {len(unknown)} items that are not in "
                    f"the catalogue (e.g. {', '.join(unknown[:3])})"
                )
        return catalog, interactions

    def _build_adapter(self) -> Adapter:
        if self._adapter is not None:
            return self._adapter
        from recaudit.adapters import build_adapter

        try:
            return build_adapter(self.config.adapter)
        except Exception as e:  # noqa: BLE001
            raise SetupError(f"adapter ({self.config.adapter.kind}): {type(e).__name__}: {e}") from e

    def _wrap_cache(self, adapter: Adapter) -> Adapter:
        path = self.cache_path()
        if path is None:
            return adapter
        from recaudit.adapters.base import AdapterError
        from recaudit.adapters.cache import CachedAdapter

        try:  # CachedAdapter inspects the path first (inspect_cache_file) and writes nothing if it is bad
            return CachedAdapter(adapter, path=path)
        except AdapterError as e:
            raise SetupError(f"cache {path}: {_first_line(e)}") from e
        except Exception as e:  # noqa: BLE001 - any other failure to open the cache is one setup line too
            raise SetupError(f"cache {path}: {type(e).__name__}: {_first_line(e)}") from e

    # --------------------------------------------------------------------------------- run

    def run(self) -> AuditRun:
        """Validate, load, run every check (reusing finished ones) and write results.json."""
        t0 = time.perf_counter()
        started = _now()
        plans = self.config.plan()
        catalog, interactions = self._load_data()
        data_hashes = _data_hashes(catalog, interactions)
        identity = self._model_identity()
        finished = None if self.fresh else all_finished(self.checks_dir, plans, identity, data_hashes)
        model: Adapter | None
        built: dict[str, list[Request]] = {}  # each probe's requests, built once: checked, then sent
        if finished is not None:  # every check is done with complete evidence: no model is loaded
            adapter = model = None
            fingerprint, reusable = recorded_fingerprint(finished) or dict(identity or {}), finished
        else:
            adapter = self._build_adapter()
            self._preflight(adapter)
            fingerprint = dict(adapter.fingerprint)  # settled by the pre-flight (what the server reports)
            reusable = {} if self.fresh else finished_checks(self.checks_dir, plans, identity or fingerprint, data_hashes)
            # a reused check sends nothing: its requests are neither built nor checked against the server
            built = self._check_settings([p for p in plans if p.name not in reusable], adapter, catalog, interactions)
        key_fingerprint = identity or fingerprint
        self._check_writable()
        if adapter is not None:
            model = self._wrap_cache(adapter)
        write_text_atomic(self.run_dir / "config.yaml", yaml.safe_dump(self._public_config(), sort_keys=False))
        self.checks_dir.mkdir(parents=True, exist_ok=True)

        results: list[CheckResult] = []
        reused: list[str] = []
        computed: list[str] = []
        with RunProgress(self.console, enabled=self.progress) as bars:
            bars.start_checks(len(plans))
            for plan in plans:
                key, requests = check_key(plan, key_fingerprint, data_hashes), built.pop(plan.name, None)
                path = self.checks_dir / f"{plan.name}.json"
                result: CheckResult | None = reusable.get(plan.name)
                if result is not None:
                    reused.append(plan.name)
                    bars.log(f"↺ {plan.name}: reused from {path}")
                    rejudge_coverage(result, plan)
                else:
                    assert model is not None and adapter is not None
                    bars.log(f"▶ {plan.name}: running")
                    ctx = CheckContext(
                        adapter=model,
                        catalog=catalog,
                        interactions=interactions,
                        seed=plan.params.seed,
                        progress=bars.track,
                        # keyed, so checkpoints made under other params are never resumed
                        workdir=self.run_dir / "work" / f"{plan.name}-{key[:12]}",
                        batch_size=request_chunk(self.config.batch_size, adapter),
                    )
                    result = self._run_check(plan, ctx, key, fingerprint, data_hashes, model, requests)
                    self._keep_evidence(plan, ctx.evidence, result)
                    computed.append(plan.name)
                result = result.model_copy(update={"verdict": evaluate_verdict(result, plan.thresholds)})
                write_check_file(path, key, result)
                bars.log(_status_line(result))
                bars.check_done()
                results.append(result)

        audit = AuditResults(
            audit_name=self.config.name,
            checks=results,
            reproducibility=Reproducibility(
                recaudit_version=recaudit.__version__,
                seed=self.config.seed,
                adapter_fingerprint=fingerprint,
                data_hashes=data_hashes,
                library_versions=library_versions(),
                config=self._public_config(),
                cache_stats=_cache_stats(model) if model is not None else {},
                started_at=started,
                duration_s=round(time.perf_counter() - t0, 3),
                platform=platform_summary(),
            ),
        )
        write_text_atomic(self.results_path, audit.to_json())
        return AuditRun(audit, self.run_dir, self.results_path, reused, computed)

    def _model_identity(self) -> dict[str, Any] | None:
        """A local model's identity read from its files (no loading); None for endpoints, callables and
        an adapter handed in, whose fingerprint is their identity."""
        if self._adapter is not None:
            return None
        from recaudit.adapters.identity import local_identity

        try:
            return local_identity(self.config.adapter)
        except Exception:  # noqa: BLE001 - building the adapter reports the problem in one line
            return None

    def _public_config(self) -> dict[str, Any]:
        """The resolved config with any credential inside a URL redacted (what is written anywhere)."""
        from recaudit.adapters.secrets import redact_obj

        return redact_obj(self.config.resolved_dump())

    def _preflight(self, adapter: Adapter) -> None:
        """One cheap request before anything is written; any failure is one SetupError line."""
        from recaudit.adapters.preflight import preflight

        try:
            preflight(adapter)
        except Exception as e:  # noqa: BLE001 - every pre-flight failure is a setup error of one line
            raise SetupError(f"pre-flight ({self.config.adapter.kind}): {_first_line(e)}") from e

    def _check_settings(self, plans: list[PlannedCheck], adapter: Adapter, catalog, interactions) -> dict[str, list[Request]]:
        """Every generation setting a probe will send must be one the adapter honours (a server that
        would drop ``repetition_penalty`` is refused here, before anything runs or is written); returns
        the checked requests by check name, to be sent as they are (one that failed to build is left
        out: it builds again, and reports its own error, when it runs)."""
        from recaudit.adapters.preflight import check_requests

        built: dict[str, list[Request]] = {}
        for plan in plans:
            if not issubclass(plan.cls, Probe):
                continue
            ctx = CheckContext(adapter=adapter, catalog=catalog, interactions=interactions, seed=plan.params.seed)
            try:
                check = plan.instantiate()
                assert isinstance(check, Probe)
                requests = check.requests(ctx)  # pure: no model call, no file
            except Exception:  # noqa: BLE001 - the check itself reports its own problems when it runs
                continue
            try:
                check_requests(adapter, requests)
            except Exception as e:  # noqa: BLE001 - one setup line naming the check
                raise SetupError(f"check {plan.name}: {_first_line(e)}") from e
            built[plan.name] = requests
        return built

    def _check_writable(self) -> None:
        """The run folder can be made and written — checked before any file is written, so a bad path
        leaves nothing behind (the cache path is checked by CachedAdapter itself, in ``_wrap_cache``)."""
        d = self.run_dir
        if d.exists() and not d.is_dir():
            raise SetupError(f"output_dir {d} exists and is not a folder")
        probe_dir = next(p for p in (d, *d.parents) if p.exists())
        if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
            raise SetupError(f"output_dir {d}: cannot write in {probe_dir}")

    def _keep_evidence(self, plan: PlannedCheck, evidence: EvidenceLog, result: CheckResult) -> None:
        """Coverage from the check's evidence records (one place for every check), and the audit trail."""
        if not plan.cls.records_evidence:
            result.coverage = None
            return
        if not plan.cls.marks_answers:
            for s in evidence.samples:
                if s.outcome == "unchecked":
                    s.outcome = "usable"
        result.coverage = evidence.coverage(min_answered=plan.min_answered, min_usable=plan.min_usable)
        if len(evidence):
            evidence.write(self.checks_dir / plan.name)

    def _run_check(
        self,
        plan: PlannedCheck,
        ctx: CheckContext,
        key: str,
        fingerprint: dict[str, Any],
        data_hashes: dict[str, str],
        model: Adapter,
        requests: list[Request] | None = None,
    ) -> CheckResult:
        """Run one check (a probe sends ``requests`` when given); any exception becomes an errored
        CheckResult so the others still run."""
        started, t0 = _now(), time.perf_counter()
        stats_before = _cache_stats(model)
        check = None
        try:
            if ctx.workdir is not None:
                ctx.workdir.mkdir(parents=True, exist_ok=True)
            check = plan.instantiate()
            result = check.run(ctx, requests) if requests is not None and isinstance(check, Probe) else check.run(ctx)
            if not isinstance(result, CheckResult):
                raise TypeError(f"check {plan.spec.check!r} returned {type(result).__name__}, not CheckResult")
            result = result.model_copy(update={"name": plan.name, "check": plan.spec.check})
        except Exception as e:  # noqa: BLE001 - per-check failure isolation is the point
            log.debug("check %s errored", plan.name, exc_info=True)
            result = CheckResult(
                name=plan.name,
                check=plan.spec.check,
                title=plan.cls.title,
                risk=plan.cls.risk,
                params=plan.params.model_dump(mode="json"),
                references=list(plan.cls.references),
                error=_error_summary(e),
            )
        stats_after = _cache_stats(model)
        result.reproducibility = Reproducibility(
            recaudit_version=recaudit.__version__,
            seed=plan.params.seed,
            adapter_fingerprint=fingerprint,
            data_hashes=data_hashes,
            config={"key": key, **plan.spec.model_dump(mode="json")},
            cache_stats={k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after},
            started_at=started,
            duration_s=round(time.perf_counter() - t0, 3),
            platform=platform_summary(),
        )
        return result


# ------------------------------------------------------------------------------------ helpers


def _first_line(e: BaseException) -> str:
    """An exception as one line: its message's first line, or its type when it has no message."""
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def _error_summary(e: BaseException) -> str:
    """``Type: message`` on the first line, then the last few frames of the traceback."""
    frames = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-TRACEBACK_FRAMES))
    return f"{type(e).__name__}: {e}\n\n{frames}"


_STATUS_MARK = {"pass": "✓", "fail": "✗", "error": "✗", "incomplete": "!", "not_judged": "·"}


def _status_line(result: CheckResult) -> str:
    status = result.status
    secs = result.reproducibility.duration_s
    if result.error:
        extra = f" — {result.error.splitlines()[0]}"
    elif result.verdict.reason and status != "pass":
        extra = f" — {result.verdict.reason}"
    else:
        extra = ""
    extra += "".join(f"\n    breach: {b.message or b.metric}" for b in result.verdict.breaches)
    return f"{_STATUS_MARK.get(status, '?')} {result.name}: {status}" + (
        f" ({secs:.1f} s)" if secs is not None else ""
    ) + extra


def request_chunk(configured: int, adapter: object) -> int:
    """Requests per adapter call: the configured ``batch_size``, or several of the adapter's own batches."""
    return requests_per_call(adapter, floor=configured)


def run_single_check(
    name: str,
    adapter: Adapter,
    params: dict[str, Any] | None = None,
    *,
    thresholds: Sequence[str] = (),
    catalog: Catalog | None = None,
    interactions: Interactions | None = None,
    min_answered: float = 0.98,
    min_usable: float | None = None,
    batch_size: int = 8,
) -> CheckResult:
    """Run one registered check on ``adapter`` as an audit would (per-check isolation, evidence,
    coverage and verdict), without a run folder; data default to the demo catalogue and interactions.
    A bad check name or bad params raise ValueError (one line); a crash inside the check is an
    ``error`` result, as in an audit."""
    import tempfile

    from recaudit.audits.config import AuditConfig, CheckSpec, ConfigError, DemoData
    from recaudit.audits.verdicts import Threshold

    spec = CheckSpec(check=name, params=dict(params or {}), thresholds=list(thresholds))
    try:
        (plan,) = AuditConfig(checks=[spec], min_answered=min_answered, min_usable=min_usable).plan()
    except ConfigError as e:
        raise ValueError("; ".join(e.issues)) from None
    plan = PlannedCheck(spec, plan.cls, plan.params, tuple(Threshold.parse(t) for t in thresholds),
                        plan.min_answered, plan.min_usable)
    if catalog is None and interactions is None:
        catalog, interactions = load_data(DemoData())
    fingerprint = dict(adapter.fingerprint)
    data_hashes = _data_hashes(catalog, interactions)
    key = check_key(plan, fingerprint, data_hashes)
    with tempfile.TemporaryDirectory(prefix="recaudit-check-") as tmp:
        runner = Runner(AuditConfig(checks=[spec]), run_dir=tmp, adapter=adapter, progress=False)
        ctx = CheckContext(
            adapter=adapter, catalog=catalog, interactions=interactions, seed=plan.params.seed,
            workdir=Path(tmp) / "work", batch_size=request_chunk(batch_size, adapter),
        )
        result = runner._run_check(plan, ctx, key, fingerprint, data_hashes, adapter)
        runner._keep_evidence(plan, ctx.evidence, result)
    return result.model_copy(update={"verdict": evaluate_verdict(result, plan.thresholds)})
