#!/usr/bin/env bash
# What retriever-mined negatives do to a reader of retrieved passages, measured small: two arms continue
# fine-tuning one reader for the same budget (3,000 training questions, lr 1e-4), one with same-article
# negatives only, one with half of them mined by BM25; each, and the reader itself, is then asked the same
# open-SQuAD questions end to end (bench/documents.py: EM/F1 and the no-answer decision).
#   bash bench/negatives_arms.sh READER WORK [LIMIT]   (WORK keeps the arms and the 490-article index)
set -euo pipefail
cd "$(dirname "$0")/.."
READER=${1:?the reader to continue from (a qatune model folder)}
WORK=${2:?a folder for the arms and the index}
LIMIT=${3:-200}
PY=${PYTHON:-python}
TRAIN=${QATUNE_DATA_DIR:-../shared/data/squad}/train-v1.1-rebuilt.json.gz
common=(--model "$READER" --train-data "$TRAIN" --train-sample 3000 --seed 7 --eval-data none --learning-rate 1e-4 -q)
$PY -m qatune.cli train "${common[@]}" --negatives 0.3 --output "$WORK/arm-article"
$PY -m qatune.cli train "${common[@]}" --negatives 0.15 --mined-negatives 0.15 --output "$WORK/arm-mined"
for arm in article mined none; do
  model=$WORK/arm-$arm
  [ "$arm" = none ] && model=$READER
  $PY bench/documents.py --collection all --limit "$LIMIT" --model "$model" --passages 10 --work "$WORK/open-all" \
    --name "documents-all-arm-$arm"
done
