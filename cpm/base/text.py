"""Text folded for search: what a person types on the phone (no accents, any case) against what the record holds."""

from __future__ import annotations

import unicodedata

# Letters with no Unicode decomposition (NFKD leaves them whole), read as their base letters; after casefold, so
# only lower case is listed (casefold already makes ß "ss").
_UNDECOMPOSED = str.maketrans({
    "ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ŧ": "t", "ı": "i", "ŀ": "l", "ŉ": "'n", "ĸ": "k", "ŋ": "n",
    "ſ": "s", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe",
})
# Typographic apostrophes (O’Brien pasted from an e-mail) are the typed one.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


def fold(text: str) -> str:
    """``text`` folded for an accent- and case-insensitive comparison: case folded (``str.casefold``: ß -> ss),
    compatibility-decomposed (NFKD: ﬁ -> fi, full-width letters -> ASCII) with every combining mark dropped
    (É -> e, ñ -> n, ç -> c), the letters Unicode does not decompose read as their base letters (Ø -> o, Ł -> l,
    Æ -> ae), typographic apostrophes as ``'``, NUL characters dropped, runs of white space as one space, no leading
    or trailing space; then NFC (Hangul stays whole).

    ``fold("  Élodie  LEFÈVRE ")`` is ``"elodie lefevre"``; ``fold("NÚÑEZ") == fold("nunez")``. A few characters
    come out longer (ß -> ss, ligatures): a stored key truncates the result. Pure Python, the same on every
    database: search keys stored with it (``enrollments.models.Customer``) and the query folded with it compare
    equal on SQLite and PostgreSQL alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c) and c != "\x00")
    bare = bare.translate(_UNDECOMPOSED).translate(_APOSTROPHES)
    return unicodedata.normalize("NFC", " ".join(bare.split()))
