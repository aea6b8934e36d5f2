"""SQuAD's answer normalisation: what counts as the same answer text, for data, decoding and metrics alike.

It lives with the data (negatives compare answers with it, decoding folds duplicate spans with it);
`evaluation.metrics` scores with the same function, so the three can never disagree.
"""

from __future__ import annotations

import re
import string

_PUNCT = str.maketrans("", "", string.punctuation)  # deletes them: str.translate, not a loop per character
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation, articles and extra whitespace (official SQuAD rules)."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())
