#!/usr/bin/env bash
# The README's run command: set up .venv (first run), generate the bundled shapes dataset, train
# the quickstart GC Mask R-CNN on CPU, evaluate it (COCO bbox + segm AP, per class), run inference
# on one validation image and draw it. Everything lands under output/quickstart/ and
# dataset/shapes/.
#
#   bash scripts/quickstart.sh            # the quickstart
#   bash scripts/quickstart.sh --readme   # also copy the picture to docs/images/quickstart.jpg
set -euo pipefail
README_PICTURE=
case "${1:-}" in
  --readme) README_PICTURE=docs/images/quickstart.jpg ;;
  "") ;;
  *) echo "usage: bash scripts/quickstart.sh [--readme]" >&2; exit 2 ;;
esac
START=$SECONDS
elapsed() { local s=$((SECONDS - START)); printf '%d min %02d s' $((s / 60)) $((s % 60)); }
step() { printf '\n== [%s] %s\n' "$(elapsed)" "$*"; }

step "0/4 set-up: .venv with the pinned requirements (first run: about a minute; later: instant)"
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

CONFIG=configs/gcnet/shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes.yml
NAME=mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes
OUT=output/quickstart
WEIGHTS=$OUT/$NAME/model_final   # the config's save_dir and weights point here too
IMAGE=dataset/shapes/val/val_00000.jpg
PICTURE=$OUT/infer/$(basename "$IMAGE")
mkdir -p "$OUT"

# Training makes one pass over 1408 generated images (the config's comments say why); the 32
# validation images do not depend on how many training images there are.
step "1/4 dataset: dataset/shapes (1408 training images, 32 validation images)"
"$PY" tools/make_shapes_dataset.py --output_dir dataset/shapes --num_train 1408 2>&1 \
  | grep -v -E "numba|ccache|warnings.warn|^W[0-9]{4}|^I[0-9]{4}|compat applied"

# Paddle computes on one thread unless told otherwise; the quickstart's figures are for 2 cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

step "2/4 train: $CONFIG (log: $OUT/train.log)"
echo "   one line every 10 steps; 'eta' is the time training still needs"
"$PY" tools/train.py -c "$CONFIG" --seed 0 2>&1 | tee "$OUT/train.log" \
  | grep --line-buffered -E "Epoch: \[|Save checkpoint|Error|error" \
  | sed -u -E 's/^.*(Epoch: \[[0-9]+\] \[ *[0-9]+\/[0-9]+\]).*(loss: [0-9.]+).*(eta: [0-9:]+).*(batch_cost: [0-9.]+).*$/   \1 \2 \3 \4 s\/step/' \
  || true
[ -f "$WEIGHTS.pdparams" ] || { echo "training did not produce $WEIGHTS.pdparams; see $OUT/train.log" >&2; exit 1; }

step "3/4 evaluate: COCO bbox and segm AP on the 32 images of dataset/shapes/val (log: $OUT/eval.log)"
"$PY" tools/eval.py -c "$CONFIG" -o weights="$WEIGHTS" --output_eval "$OUT/eval" --classwise 2>&1 \
  | tee "$OUT/eval.log" \
  | grep --line-buffered -E "Eval iter|Total sample|Per-category|^\| |^\+-|Average Precision  \(AP\) @\[ IoU=0.50(:0.95)? +\| area= +all" \
  || true
grep -q "Average Precision" "$OUT/eval.log" || { echo "evaluation failed; see $OUT/eval.log" >&2; exit 1; }
# ppdet's per-class evaluation draws precision-recall curves into the working directory.
for curves in bbox_pr_curve segm_pr_curve; do
  rm -rf "$OUT/eval/$curves" && { [ ! -d "$curves" ] || mv "$curves" "$OUT/eval/"; }
done

# ppdet's usual 0.5. Each object gets one box with its best class (the config's
# ClassAgnosticNMS), but a box around part of a shape can survive it (IoU with the whole
# shape's box below 0.5): trained on an AVX2 CPU, the model adds "triangle 0.43" inside
# "triangle 0.96" on this image, drawn at 0.3; the four shapes score 0.75 to 0.97.
step "4/4 infer: $IMAGE (boxes and masks with score >= 0.5)"
"$PY" tools/infer.py -c "$CONFIG" -o weights="$WEIGHTS" --infer_img "$IMAGE" \
  --output_dir "$OUT/infer" --draw_threshold 0.5 --save_results > "$OUT/infer.log" 2>&1 \
  || { echo "inference failed; see $OUT/infer.log" >&2; exit 1; }
if [ -n "$README_PICTURE" ]; then
  cp "$PICTURE" "$README_PICTURE.tmp" && mv "$README_PICTURE.tmp" "$README_PICTURE"
fi

cat <<DONE

Done in $(elapsed).
  picture      $PICTURE${README_PICTURE:+ (copied to $README_PICTURE)}
  AP           $OUT/eval.log (per class above), $OUT/eval/ (detections, precision-recall curves)
  weights      $WEIGHTS.pdparams
  train log    $OUT/train.log
  dataset      dataset/shapes/ (COCO format: train/, val/, annotations/)
DONE
