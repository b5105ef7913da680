"""Textual shilling attacks on item titles, rewrite defenses, and exposure on held-out users.

An item provider who can edit only its own item's title tries to raise the item's exposure in
an LLM recommender (Zhang et al., ACL 2024). The pieces, one job each:

- ``victim``: the recommender over any adapter (``PYesVictim``: TALLRec-style P(Yes) ranking;
  ``RankingVictim``: the LLM ranks a candidate list) behind the ``Victim`` protocol;
- ``users``: seeded attacker / held-out user split, histories and candidate lists;
- ``objective``: what a search maximises on the attacker users;
- ``strategies``: trivial append, LLM rewrite, and TextAttack-based DeepWordBug, PuncAttack,
  TextFooler (or its WordNet substitute) and BERT-Attack, each within an edit budget;
- ``textattack_bridge`` / ``_ta_components``: TextAttack offline (NLTK data, lazy import) and
  the recommender as TextAttack's model and goal;
- ``defenses``: the paper's LLM rewrite, offline spell correction, a meaning-drift detector;
- ``exposure``: share of held-out users with the target in the top K, bootstrap CIs, paired lifts;
- ``pipeline`` / ``summary`` / ``check``: the ``shilling`` audit check (``recaudit attack shilling``).

Nothing here imports TextAttack until an attack that needs it runs.
"""

from recaudit.attacks.defenses import DEFENSE_NAMES, DriftDetector, LLMRewriteDefense, SpellCorrectionDefense, Vocabulary
from recaudit.attacks.exposure import exposure, paired_difference
from recaudit.attacks.objective import TargetObjective
from recaudit.attacks.stealth import Budget
from recaudit.attacks.strategies import ATTACK_NAMES, AttackOutcome, TextAttackOptions, build_strategy
from recaudit.attacks.users import UserCase, build_cases, pick_targets, split_users
from recaudit.attacks.victim import PYesVictim, RankingVictim, TargetOutcome, Victim

__all__ = [
    "ATTACK_NAMES", "DEFENSE_NAMES", "AttackOutcome", "Budget", "DriftDetector", "LLMRewriteDefense", "PYesVictim",
    "RankingVictim", "SpellCorrectionDefense", "TargetObjective", "TargetOutcome", "TextAttackOptions", "UserCase",
    "Victim", "Vocabulary", "build_cases", "build_strategy", "exposure", "paired_difference", "pick_targets", "split_users",
]
