"""Catalogues, interactions, loaders, the shipped demo catalogue and name lists."""

from recaudit.data.catalog import Catalog, Interactions, Item

__all__ = ["Catalog", "Interactions", "Item"]
