"""qatune.data.adversarial: questions changed so that their own paragraph no longer answers them."""

from __future__ import annotations

import random

import numpy as np
import pytest

from qatune.data.adversarial import Perturber, english, names, unstated
from qatune.data.negatives import add_negatives, parse_kinds
from qatune.data.squad import Example, QADataset, load_file, to_squad
from qatune.errors import ConfigError, DataError

PEOPLE = ("Marie Curie", "Pierre Curie", "Albert Einstein", "Niels Bohr")
PLACES = ("Paris", "Warsaw", "Berlin", "Copenhagen")


def typed_embed(texts):
    """A stand-in for the sentence model that knows two types: people and places."""
    out = np.zeros((len(texts), 3), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i] = (1, 0.1 * (len(t) % 3), 0) if t in PEOPLE else (0, 0.1 * (len(t) % 3), 1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


ARTICLE = [
    Example(
        "q1",
        "Where did Albert Einstein work in 1905?",
        "Albert Einstein worked in Berlin in 1905.",
        ("Berlin",),
        (26,),
        "Physics",
    ),
    Example(
        "q2",
        "Who lived in Warsaw?",
        "Marie Curie lived in Warsaw and then in Paris.",
        ("Marie Curie",),
        (0,),
        "Physics",
    ),
    Example(
        "q3",
        "Who worked in Copenhagen?",
        "Niels Bohr worked in Copenhagen, where Pierre Curie never went.",
        ("Niels Bohr",),
        (0,),
        "Physics",
    ),
    Example(
        "q4",
        "What is the largest city of Denmark?",
        "Copenhagen is the largest city of Denmark.",
        ("Copenhagen",),
        (0,),
        "Physics",
    ),
]


def test_names_stop_at_a_sentence_end_and_drop_leading_function_words():
    text = "In Paris the Curies met. The Institute of Radium opened in 1914. Bay of the Pigs and Cuba's."
    assert [text[s:e] for s, e in names(text)] == ["Paris", "Curies", "Institute of Radium", "Bay of the Pigs", "Cuba"]


def test_entity_becomes_a_same_type_name_the_paragraph_never_mentions():
    perturber = Perturber(ARTICLE, typed_embed)
    made = {perturber.perturb(ARTICLE[0], "entity", random.Random(s)) for s in range(20)}
    # a person for a person, never one the paragraph names, never the answer
    assert made and made <= {f"Where did {p} work in 1905?" for p in ("Marie Curie", "Pierre Curie", "Niels Bohr")}
    # a place for a place: "Warsaw" may not become Paris, which the paragraph names
    assert perturber.perturb(ARTICLE[1], "entity", random.Random(0)) in {
        "Who lived in Berlin?",
        "Who lived in Copenhagen?",
    }
    assert Perturber(ARTICLE).perturb(ARTICLE[1], "entity", random.Random(0)) is None  # no sentence model


def test_number_moves_a_year_to_one_the_paragraph_does_not_state():
    perturber, rng = Perturber(ARTICLE), random.Random(0)
    for _ in range(30):
        question = perturber.perturb(ARTICLE[0], "number", rng)
        year = int(question.split()[-1].rstrip("?"))
        assert 1895 <= year <= 1915 and year != 1905 and question.startswith("Where did Albert Einstein work in")
    big = Example(
        "n", "How many of the 1,500 soldiers came back?", "Of the 1,500 soldiers 900 came back.", ("900",), (21,)
    )
    changed = perturber.perturb(big, "number", rng)
    assert changed != big.question and "," in changed.split()[4]  # written as the question wrote it
    assert perturber.perturb(ARTICLE[1], "number", rng) is None  # no number


def test_antonym_needs_the_word_in_the_paragraph_and_its_opposite_absent():
    perturber, rng = Perturber(ARTICLE), random.Random(0)
    assert perturber.perturb(ARTICLE[3], "antonym", rng) == "What is the smallest city of Denmark?"
    both = Example(
        "b",
        "What is the largest city?",
        "Aarhus is smaller; the largest city is Copenhagen, the smallest Ry.",
        ("Copenhagen",),
        (37,),
    )
    assert perturber.perturb(both, "antonym", rng) is None
    hyphen = Example("h", "What is the best-known work?", "Her best-known work is the best.", ("work",), (15,))
    assert perturber.perturb(hyphen, "antonym", rng) is None  # "best-known" is not "best"


def test_negation_inserts_not_unless_the_paragraph_negates():
    perturber, rng = Perturber(ARTICLE), random.Random(0)
    plain = Example(
        "p", "Apollo 17 was significant for what reason?", "Apollo 17 was the last mission.", ("last mission",), (18,)
    )
    assert perturber.perturb(plain, "negation", rng) == "Apollo 17 was not significant for what reason?"
    assert perturber.perturb(ARTICLE[2], "negation", rng) is None  # "never" in the paragraph


def test_a_mix_of_kinds_keeps_the_paragraph_and_the_plausible_answer(squad_dir):
    dev = load_file(squad_dir / "dev-v1.1.json.gz")
    part = dev.select(limit=600)
    kinds = ("article", "number", "antonym")
    made = add_negatives(part, 0.5, seed=3, pool=part, kinds=kinds, perturber=Perturber(part.examples))
    originals = {e.id: e for e in part.examples}
    negatives = [e for e in made.examples if not e.answers]
    assert 290 <= len(negatives) <= 300
    counts = {k: sum(e.id.endswith(f"-{k}") for e in negatives) for k in ("negative", "number", "antonym")}
    assert all(counts.values()) and sum(counts.values()) == len(negatives)
    assert f"article {counts['negative']}, number {counts['number']}, antonym {counts['antonym']}" in made.notes[-1]
    for negative in negatives:
        source = originals[negative.id.rsplit("-", 1)[0]]
        if negative.id.endswith("-negative"):
            assert negative.question == source.question and negative.context != source.context
        else:
            assert negative.question != source.question and negative.context == source.context
            assert negative.plausible == tuple(zip(source.answers, source.answer_starts))
    written = to_squad(made)
    qas = [qa for a in written["data"] for p in a["paragraphs"] for qa in p["qas"]]  # type: ignore[index]
    assert sum("plausible_answers" in qa for qa in qas) == counts["number"] + counts["antonym"]
    again = add_negatives(part, 0.5, seed=3, pool=part, kinds=kinds, perturber=Perturber(part.examples))
    assert [e.question for e in again.examples] == [e.question for e in made.examples]  # seeded


def test_the_kinds_share_the_negatives_equally_as_far_as_the_questions_allow(squad_dir):
    """A scarce kind (a number in the question) gets every question it fits, up to an equal share, not
    only those of a random sample; `article` (which fits almost all) fills what the others cannot."""
    part = load_file(squad_dir / "dev-v1.1.json.gz").select(limit=600)
    perturber, kinds = Perturber(part.examples), ("article", "number")
    fits = sum(perturber.perturb(e, "number", random.Random(0)) is not None for e in part.examples)
    for fraction in (0.1, 0.5):
        wanted = round(fraction * len(part.examples))
        made = add_negatives(part, fraction, seed=5, pool=part, kinds=kinds, perturber=perturber)
        negatives = [e for e in made.examples if not e.answers]
        numbers = sum(e.id.endswith("-number") for e in negatives)
        share = -(-wanted // 2)
        # a number's change is drawn at random and may find no free value: a few fits can miss
        assert len(negatives) == wanted and 0.95 * min(fits, share) <= numbers <= share, (fraction, fits, numbers)
    assert 0 < fits < 150  # the scarce kind: a random sample of 300 would have given it about half of these


def test_plausible_answers_survive_a_v2_file(tmp_path):
    from qatune.io import atomic_write_json

    data = QADataset(ARTICLE, "mem")
    made = add_negatives(data, 1.0, kinds=("antonym",), strict=False)
    atomic_write_json(tmp_path / "v2.json", to_squad(made))
    loaded = {e.id: e for e in load_file(tmp_path / "v2.json").examples}
    assert loaded["q4-antonym"].plausible == (("Copenhagen", 0),) and loaded["q4-antonym"].is_impossible


def test_kinds_are_checked():
    assert parse_kinds(" entity, number ,entity") == ("entity", "number")
    for bad, message in (("entity,verbs", r"unknown kind\(s\) 'verbs'"), (" , ", "no kind named")):
        with pytest.raises(ConfigError, match=message):
            parse_kinds(bad)


def test_a_share_the_data_cannot_give_and_a_language_the_kinds_do_not_read_are_errors():
    data = QADataset(ARTICLE, "four.json")
    with pytest.raises(DataError, match=r"\(kinds antonym\) can make 1 of the 4 unanswerable questions asked for"):
        add_negatives(data, 1.0, kinds=("antonym",))
    german = QADataset(
        [Example("g", "Wo liegt Berlin?", "Berlin liegt an der Spree.", ("an der Spree",), (13,))], "de.json"
    )
    assert not english([e.question for e in german.examples]) and english([e.question for e in ARTICLE])
    with pytest.raises(DataError, match="antonym change English words.*--negative-kinds article"):
        add_negatives(german, 1.0, kinds=("article", "antonym"))


def test_training_and_its_held_out_questions_get_every_kind(squad_dir):
    """The no-answer threshold is chosen on the held-out questions: they get the same kinds (other seeds)."""
    from conftest import tiny_config
    from qatune.training.setup import load_train_eval

    config = tiny_config(
        "m",
        "run",
        train_data=str(squad_dir / "dev-v1.1.json.gz"),
        eval_data=None,
        train_limit=None,
        train_sample=600,
        calibration_questions=600,
        negatives=0.5,
        negative_kinds="article,entity,number,antonym",
    )
    train, _, held = load_train_eval(config)
    assert held is not None
    for part in (train, held):
        kinds = {e.id.rsplit("-", 1)[1] for e in part.examples if not e.answers}
        assert kinds == {"negative", "entity", "number", "antonym"}, kinds
    assert not {e.question for e in train.examples} & {e.question for e in held.examples if not e.answers}


def test_the_names_an_article_offers_are_the_same_in_every_process():
    """Seeded negatives are reproducible: which names an article offers does not depend on the order of
    a set of strings (which PYTHONHASHSEED changes from one process to the next)."""
    import os
    import subprocess
    import sys

    code = (
        "import qatune.data.adversarial as a; a.NAMES = 3; "  # 8 names found once each: the 3 kept are a tie-break
        "print(a._frequent_names(['Ann met Bob in Rome. Cy saw Dan, Eve, Fay and Gus there.']))"
    )
    found = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
        ).stdout
        for seed in range(6)
    }
    assert found == {"['Bob', 'Dan', 'Rome']\n"}


@pytest.mark.parametrize(
    ("question", "marks"),
    [
        ("Who won Super Bowl 50 in Santa Clara?", ()),
        ("Who won Super Bowl 51 in Santa Clara?", ("number",)),
        ("Who won Super Bowl 50 in Miami?", ("entity",)),
        ("Who won Super Bowl 49 in Miami?", ("number", "entity")),
    ],
)
def test_unstated_names_the_marks_a_question_bears_against_its_paragraph(question: str, marks: tuple[str, ...]) -> None:
    context = "The Denver Broncos won Super Bowl 50 at Levi's Stadium in Santa Clara."
    assert unstated(Example("q", question, context, ("Denver Broncos",), (4,))) == marks


def test_unstated_takes_no_lone_capitalised_first_word_for_a_name() -> None:
    context = "The Denver Broncos won Super Bowl 50 at Levi's Stadium in Santa Clara."
    assert unstated(Example("q", "Besides, who won in Santa Clara?", context, ("Denver Broncos",), (4,))) == ()
    assert unstated(Example("q", "Besides, who won in Miami?", context, ("Denver Broncos",), (4,))) == ("entity",)
