"""Reads the catalog's data files: `phrases/{persona}.{language}.txt`, one phrase a line.

A line `# category` starts a category; every other non-blank line is a phrase, as spoken.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.tts.models import Language, Persona

PHRASES_DIR = Path(__file__).resolve().parent / "phrases"
CATEGORIES = ("greetings", "confirmations", "fillers", "scheduling", "follow-ups")


@dataclass(frozen=True, slots=True)
class CatalogPhrase:
    category: str
    text: str


def parse_catalog(text: str, source: str) -> tuple[CatalogPhrase, ...]:
    phrases: list[CatalogPhrase] = []
    category: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            category = line.lstrip("#").strip()
            if category not in CATEGORIES:
                raise ValueError(f"{source}:{number}: unknown category {category!r}")
            continue
        if category is None:
            raise ValueError(f"{source}:{number}: a phrase before any '# category' line")
        phrases.append(CatalogPhrase(category, line))
    return tuple(phrases)


@lru_cache(maxsize=len(Persona) * len(Language))
def catalog_phrases(persona: Persona, language: Language) -> tuple[CatalogPhrase, ...]:
    """The catalog of one persona in one language, in file order."""
    path = PHRASES_DIR / f"{persona.value}.{language.value}.txt"
    return parse_catalog(path.read_text(encoding="utf-8"), path.name)
