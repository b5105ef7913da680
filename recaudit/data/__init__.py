"""Catalogues, interactions, loaders, the shipped demo catalogue and name lists."""

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.data.errors import DataFormatError
from recaudit.data.loaders import (
    demo_catalog,
    demo_interactions,
    load_catalog_file,
    load_interactions_file,
    load_movielens_100k,
    load_movielens_latest_small,
)

__all__ = [
    "Catalog",
    "DataFormatError",
    "Interactions",
    "Item",
    "demo_catalog",
    "demo_interactions",
    "load_catalog_file",
    "load_interactions_file",
    "load_movielens_100k",
    "load_movielens_latest_small",
]
