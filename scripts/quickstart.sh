#!/usr/bin/env bash
# The README's run command: set up .venv (first run), generate the bundled shapes dataset, train
# the quickstart GC Mask R-CNN on CPU, evaluate it (COCO bbox + segm AP), run inference on one
# image and draw it. Everything lands under output/quickstart/ and dataset/shapes/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

CONFIG=configs/gcnet/shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes.yml
NAME=mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes
OUT=output/quickstart
WEIGHTS=$OUT/$NAME/model_final   # the config's save_dir and weights point here too
IMAGE=dataset/shapes/val/val_00000.jpg
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "1/4 dataset: dataset/shapes"
"$PY" tools/make_shapes_dataset.py --output_dir dataset/shapes

step "2/4 train: $CONFIG (log: $OUT/train.log)"
"$PY" tools/train.py -c "$CONFIG" --seed 0 2>&1 | tee "$OUT/train.log" \
  | grep --line-buffered -E "Epoch: \[|Save checkpoint|Total sample|average precision|Error|error" || true
[ -f "$WEIGHTS.pdparams" ] || { echo "training did not produce $WEIGHTS.pdparams; see $OUT/train.log" >&2; exit 1; }

step "3/4 evaluate: COCO bbox and segm AP on dataset/shapes/val (log: $OUT/eval.log)"
"$PY" tools/eval.py -c "$CONFIG" -o weights="$WEIGHTS" --output_eval "$OUT/eval" 2>&1 \
  | tee "$OUT/eval.log" | grep -E "Average Precision|Average Recall|Total sample|bbox|segm" || true
grep -q "Average Precision" "$OUT/eval.log" || { echo "evaluation failed; see $OUT/eval.log" >&2; exit 1; }

# 0.3, not ppdet's usual 0.5: a few minutes from scratch leave scores modest.
step "4/4 infer: $IMAGE (boxes and masks with score >= 0.3)"
"$PY" tools/infer.py -c "$CONFIG" -o weights="$WEIGHTS" --infer_img "$IMAGE" \
  --output_dir "$OUT/infer" --draw_threshold 0.3 --save_results > "$OUT/infer.log" 2>&1 \
  || { echo "inference failed; see $OUT/infer.log" >&2; exit 1; }

cat <<DONE

Done.
  dataset      dataset/shapes/ (COCO format: train/, val/, annotations/)
  weights      $WEIGHTS.pdparams
  train log    $OUT/train.log
  eval         $OUT/eval.log, $OUT/eval/bbox.json, $OUT/eval/mask.json
  picture      $OUT/infer/$(basename "$IMAGE")
DONE
