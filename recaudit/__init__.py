"""recaudit: audit LLM-based recommender systems for fairness, robustness and privacy."""

__version__ = "0.1.0"
