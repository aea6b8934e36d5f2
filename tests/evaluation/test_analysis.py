"""qatune.evaluation.analysis: EM/F1 by question word and length, and the most confident wrong answers."""

from __future__ import annotations

from qatune.data.squad import Example, QADataset
from qatune.evaluation.analysis import analyse, question_word
from qatune.evaluation.results import EvalResult, Scores


def test_groups_and_the_most_confident_wrong_answers_first():
    long = "word " * 150 + "Paris is the capital."
    examples = [
        Example("a", "In what year did it open?", "It opened in 1900.", ("1900",), (13,)),
        Example("b", "Who built it?", "Eiffel built it.", ("Eiffel",), (0,)),
        Example("c", "Who designed it?", "Sauvestre designed it.", ("Sauvestre",), (0,)),
        Example("d", "Name the capital of France.", long, ("Paris is the capital",), (750,)),
    ]
    predictions = {"a": "1900", "b": "Gustave", "c": "designed", "d": "Paris"}
    probabilities = {"a": (0.9, 0.9), "b": (0.4, 0.5), "c": (0.8, 0.7), "d": (0.2, 0.2)}
    scores = Scores(0, 0, 4, 1, 0, 3, 0, 0, None, 1, 4)
    found = analyse(EvalResult(predictions, scores, probabilities), QADataset(examples, "mem"))
    words = {g.name: (g.questions, g.exact_match) for g in found.by_question_word}
    assert words == {"who": (2, 0.0), "what": (1, 100.0), "other": (1, 0.0)}
    assert {g.name: g.questions for g in found.by_answer_length} == {"1 word": 3, "3-4 words": 1}
    assert {g.name for g in found.by_context_length} == {"under 100 words", "100-199 words"}
    assert [w.id for w in found.most_confident_wrong] == ["c", "b", "d"]  # by confidence, wrong only
    assert found.most_confident_wrong[2].f1 == 50.0 and found.to_dict()["most_confident_wrong"][0]["gold"] == [
        "Sauvestre"
    ]
    assert question_word("Which one, and why?") == "which" and question_word("Name it.") == "other"
