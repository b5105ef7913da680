"""Text layer: the one list parser, the one title normaliser, the one grounding step, embeddings."""

from recaudit.text.ground import Grounder, Grounding, grounding_summary
from recaudit.text.parse import ParsedList, normalize_title, parse_list

__all__ = ["Grounder", "Grounding", "ParsedList", "grounding_summary", "normalize_title", "parse_list"]
