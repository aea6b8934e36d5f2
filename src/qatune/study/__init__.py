"""A whole study from one YAML file: sweep -> fine-tune -> untuned vs fine-tuned -> questions -> report."""

from qatune.study.pipeline import run_study
from qatune.study.spec import StudySpec, load_study, parse_study

__all__ = ["StudySpec", "load_study", "parse_study", "run_study"]
