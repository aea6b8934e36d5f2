"""Evaluation: official SQuAD metrics, scoring a model through the answering seam, confidence calibration."""
