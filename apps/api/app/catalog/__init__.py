"""The phrase catalog: common real-estate phrases per persona and language, pre-generated."""

from app.catalog.phrases import CATEGORIES, CatalogPhrase, catalog_phrases

__all__ = ["CATEGORIES", "CatalogPhrase", "catalog_phrases"]
