"""The metric names of the item-side probes (exposure, item_fairness), declared once as data.

Each probe's ``metrics`` class attribute is its tuple here (the probe modules are over the size
limit, so the declarations live beside them): the audit config checks thresholds against them and
the report leads with the ``headline`` family.
"""

from __future__ import annotations

from recaudit.metric_names import MetricSpec

EXPOSURE_METRICS = (
    MetricSpec("exposure.gini.{strategies}.{system_prompts}", headline=True),
    MetricSpec("{m}.{strategies}.{system_prompts}", values={"m": (
        "exposure.hhi", "exposure.entropy", "coverage", "recency.median_year", "recency.std_year",
        "grounded_rate", "hit_rate", "ndcg", "recall", "genre_dominance")}),
    # against the first (reference) system prompt
    MetricSpec("{m}_change.{strategies}.{system_prompts}", values={"m": (
        "exposure.gini", "exposure.hhi", "exposure.entropy", "coverage")}),
    MetricSpec("stability.{strategies}.{system_prompts}", when=lambda p: p.n_repeats >= 2),
    MetricSpec("baseline.{baselines}.{m}", values={"m": (
        "gini", "hhi", "entropy", "coverage", "median_year", "std_year", "hit_rate", "ndcg", "recall",
        "genre_dominance")}),
    MetricSpec("history.median_year"),
)

ITEM_FAIRNESS_METRICS = (
    MetricSpec("gu.{groupings}.*"),  # one per popularity bucket or genre
    MetricSpec("dgu.{groupings}", headline=True),
    MetricSpec("mgu.{groupings}"),
    MetricSpec("{m}@{ks}.{groupings}", values={"m": ("dgu", "mgu")}),  # the ks other than k
    MetricSpec("baseline.{baselines}.{m}.{groupings}", values={"m": ("dgu", "mgu")}),
    MetricSpec("embedded_rate", when=lambda p: p.list_construction == "k-nearest"),
    MetricSpec("grounded_rate", when=lambda p: p.list_construction != "k-nearest"),
    MetricSpec("{m}", values={"m": ("parse_rate", "hit_rate", "history_repeat_rate")}),
    MetricSpec("baseline.{baselines}.hit_rate"),
)
