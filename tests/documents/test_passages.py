"""qatune.documents.passages: paragraph and sentence boundaries, sizes, overlap, exact character spans."""

from __future__ import annotations

from qatune.documents.passages import split_passages, words

SENTENCES = " ".join(f"Sentence {i} says something about topic {i % 5} here." for i in range(60))


def test_paragraphs_that_fit_stay_whole_and_spans_are_exact():
    text = "This paragraph has quite a few words in it, more than twenty of them, so it stands on its own here.\n\n" * 3
    spans = split_passages(text)
    assert len(spans) == 3
    for span in spans:
        assert text[span.start : span.end] == text.split("\n\n")[0]


def test_a_long_paragraph_is_cut_at_sentences_with_one_sentence_of_overlap():
    spans = split_passages(SENTENCES, max_words=60)
    assert len(spans) > 3
    for span in spans:
        piece = SENTENCES[span.start : span.end]
        assert words(piece) <= 60 and piece.startswith("Sentence") and piece.endswith("here.")
    for before, after in zip(spans, spans[1:]):
        assert after.start < before.end  # the last sentence of one piece starts the next
        assert SENTENCES[after.start : before.end].count("Sentence") == 1
    assert spans[0].start == 0 and spans[-1].end == len(SENTENCES)


def test_a_heading_joins_the_paragraph_after_it():
    text = "Warranty\n\n" + "The warranty covers parts and labour for two years from the date of purchase, " * 2
    (span,) = split_passages(text)
    assert text[span.start : span.end].startswith("Warranty\n\nThe warranty")


def test_unspaced_scripts_are_measured_by_character():
    text = "東京は日本の首都であり、世界最大の都市圏の一つです。" * 30
    spans = split_passages(text, max_words=100)
    assert len(spans) > 3 and all(words(text[s.start : s.end]) <= 100 for s in spans)


def test_one_endless_sentence_is_cut_between_words():
    text = " ".join(f"word{i}" for i in range(500))
    spans = split_passages(text, max_words=100)
    assert all(words(text[s.start : s.end]) <= 100 for s in spans) and spans[-1].end == len(text)


def test_nothing_to_cut():
    assert split_passages("") == [] and split_passages("   \n\n  ") == []
