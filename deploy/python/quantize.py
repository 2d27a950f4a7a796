"""Post-training int8 quantization of an ONNX export for CPU, calibrated on a handful of images.

    python deploy/python/quantize.py --model_dir output_inference/<config> \
        --calib_image_dir dataset/shapes/train --calib_num 32
    python deploy/python/infer.py --model_dir output_inference/<config> --image_file demo.jpg \
        --backend openvino --run_mode int8          # or --backend onnxruntime --run_mode int8

Reads the export's `model.onnx` (`tools/export_model.py --onnx`), runs it on `--calib_num`
images preprocessed exactly as deploy does (infer_cfg.yml), records every convolution's input
range (min/max) and writes `model_int8.onnx` beside it (temporary name first, then renamed):
the same graph, BatchNorm folded into the convolutions (ONNX Runtime's graph optimizations),
with int8 QuantizeLinear/DequantizeLinear pairs around the convolutions (weights
per output channel, symmetric int8; activations per tensor, uint8). ONNX Runtime runs it with its
int8 kernels and OpenVINO turns each pair into its int8 convolutions. The residual adds of GC
blocks are quantized too, with the context term added last (`deploy/python/int8_residuals.py`),
so that they run as the control's residual adds do; everything else (RPN decoding, NMS, TopK,
RoIAlign, the box head's fully connected layers, the mask sigmoid) stays fp32 in the file (ONNX
Runtime quantizes the box head's fully connected layers itself when it loads the model, from each
run's own input range: deploy/python/int8_dynamic_fc.py), and so do the
heads' prediction convolutions (`prediction_convs`: the RPN's objectness and box deltas on every
FPN level, the mask logits; `--prediction_convs int8` quantizes them too). Those are the layers
int8 hurt: on the quickstart model (1000 generated images), quantizing only them moved box AP by
-0.7 points, as much as quantizing every convolution, and every other group of convolutions
(stem, backbone, GC blocks, FPN, RPN conv, mask convs) by 0.3 or less (deploy/README.md).

ONNX Runtime's static quantizer (onnxruntime.quantization, part of the `onnxruntime` package of
requirements-onnx.txt) does the calibration. OpenVINO's own tool, NNCF, cannot be used on this
stack: NNCF >= 2.15 requires numpy >= 1.24 (paddledet 2.6 needs numpy < 1.24), and NNCF <= 2.14
imports `openvino.runtime`, which OpenVINO 2026 no longer has.

Afterwards it compares int8 with fp32 on up to --check_num of the images (ONNX Runtime, one
image at a time) and prints how closely the detections agree.
"""
import argparse
import os
import sys

if __package__ in (None, ''):  # run as a script: make `deploy.python` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from deploy.python.backends.onnx_model import INT8_FILE  # noqa: E402
from deploy.python.errors import DeployError  # noqa: E402

# Only convolutions (backbone, FPN, RPN, mask head) are quantized: they carry almost all the
# arithmetic, and the detection-specific parts keep their fp32 numerics.
QUANTIZED_OPS = ('Conv',)
PREDICTION_CONVS = ('fp32', 'int8')
# Inputs through which a tensor's values flow into an op's result when they are not its first
# input (a first input always does, except Shape's, which reads only the size). The other inputs
# of the indexing and reshaping ops (RoiAlign's boxes, Gather's indices, Reshape's shape, ...)
# say where values go or how many, not what they are.
VALUE_OPS = ('Add', 'Sub', 'Mul', 'Div', 'MatMul', 'Concat', 'Sum', 'Max', 'Min', 'Mean', 'Where')
INSTALL_HINT = "pip install -r requirements-onnx.txt"


def require_quantizer():
    try:
        from onnxruntime import quantization  # noqa: F401
    except ImportError:
        raise DeployError("int8 quantization needs the onnxruntime package (its quantization "
                          f"tools), which is not installed: {INSTALL_HINT}")
    return quantization


def calibration_inputs(model, image_paths):
    """Yield the export's input dict (batch 1) for each image, preprocessed as deploy does."""
    from deploy.python.image_io import read_image_rgb
    from deploy.python.infer import plan_inputs
    from deploy.python.preprocess import build_preprocess, preprocess_image
    ops = build_preprocess(model.preprocess)
    for path in image_paths:
        tensor, info = preprocess_image(read_image_rgb(path), ops)
        im_shape, factor, _ = plan_inputs(info, model.raw_masks, model.legacy_pipeline)
        yield {'image': tensor[None], 'im_shape': np.asarray(im_shape, np.float32)[None],
               'scale_factor': np.asarray(factor, np.float32)[None]}


def prediction_convs(graph):
    """Names of the convolutions whose output reaches no other convolution's input features: the
    heads' prediction layers (RPN objectness and box deltas on every FPN level, mask logits).
    Their outputs are decoded, ranked and thresholded in fp32, not convolved further."""
    import collections
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers[name].append((node, index))

    def feeds_a_convolution(conv):
        seen, pending = set(conv.output), list(conv.output)
        while pending:
            for node, index in consumers[pending.pop()]:
                if node.op_type == 'Shape' or (index > 0 and node.op_type not in VALUE_OPS):
                    continue
                if node.op_type in ('Conv', 'ConvTranspose'):
                    return True
                fresh = [name for name in node.output if name not in seen]
                seen.update(fresh)
                pending += fresh
        return False
    return [node.name for node in graph.node
            if node.op_type == 'Conv' and not feeds_a_convolution(node)]


def quantize_folded(quantization, folded, target, reader, prediction_convs_as='fp32'):
    """The int8 recipe on `folded`, an ONNX file ONNX Runtime's graph optimizations have already
    folded: the GC rewrites (the file is rewritten in place), then static QDQ quantization
    calibrated by `reader` into `target`. `quantization` is onnxruntime.quantization. Returns the
    rewritten fp32 model, its GC nodes and the convolutions kept fp32."""
    from deploy.python.int8_residuals import quantized_nodes, quantized_op_types, rewrite_file
    # GC blocks: the channel scale out of the weights, the context term added last, and those
    # multiplies and adds quantized (int8_channel_scale, int8_residuals)
    folded_model, gc_nodes = rewrite_file(folded)
    kept = prediction_convs(folded_model.graph) if prediction_convs_as == 'fp32' else []
    quantization.quantize_static(
        folded, target, reader, quant_format=quantization.QuantFormat.QDQ,
        op_types_to_quantize=quantized_op_types(folded_model.graph, QUANTIZED_OPS, gc_nodes),
        nodes_to_quantize=quantized_nodes(folded_model.graph, QUANTIZED_OPS, gc_nodes),
        nodes_to_exclude=kept or None,
        per_channel=True, reduce_range=False,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
        extra_options={'WeightSymmetric': True, 'ActivationSymmetric': False})
    return folded_model, gc_nodes, kept


def quantize_export(model_dir, image_paths, log=print, prediction_convs_as='fp32'):
    """Write `model_dir/model_int8.onnx` calibrated on `image_paths`; returns its path.
    `prediction_convs_as='fp32'` leaves the heads' prediction convolutions (`prediction_convs`)
    unquantized, 'int8' quantizes every convolution."""
    if prediction_convs_as not in PREDICTION_CONVS:
        raise DeployError(f"prediction convolutions as {prediction_convs_as!r}: "
                          f"one of {', '.join(PREDICTION_CONVS)}")
    from deploy.python.backends.onnx_model import onnx_file
    from deploy.python.model_files import load_model_files
    quantization = require_quantizer()
    if not image_paths:
        raise DeployError("no calibration image")
    model = load_model_files(model_dir, backend='onnxruntime')
    source = onnx_file(model)
    import onnx
    graph_inputs = {i.name for i in onnx.load(source, load_external_data=False).graph.input}

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.inputs = calibration_inputs(model, image_paths)

        def get_next(self):
            inputs = next(self.inputs, None)
            return None if inputs is None else {k: v for k, v in inputs.items()
                                                if k in graph_inputs}

    target = os.path.join(model_dir, INT8_FILE)
    partial = target + '.partial'
    folded = target + '.fp32.partial'
    try:
        # ONNX Runtime's graph optimizations first, BatchNorm folded into the convolutions:
        # quantized before folding, each int8 convolution would be followed by an fp32
        # BatchNorm between a dequantize and a quantize, and run no faster than fp32.
        from onnxruntime.quantization.shape_inference import quant_pre_process
        quant_pre_process(source, folded, skip_symbolic_shape=True, skip_onnx_shape=True)
        _, _, kept = quantize_folded(quantization, folded, partial, Reader(),
                                     prediction_convs_as)
        os.replace(partial, target)
    except DeployError:
        raise
    except Exception as e:  # the quantizer raises many types; one line for the user
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise DeployError(f"{source}: int8 quantization failed "
                          f"({(lines[-1] if lines else type(e).__name__)[:300]})")
    finally:
        for path in (partial, folded):
            if os.path.exists(path):
                os.unlink(path)
    log(f"int8 model ({len(image_paths)} calibration images"
        f"{f', {len(kept)} prediction convolutions kept fp32' if kept else ''}) -> {target}")
    return target


def compare(model_dir, image_paths, backend='onnxruntime', score_threshold=0.3):
    """int8 against fp32 (on `backend`) on `image_paths`: for each fp32 detection scoring at
    least `score_threshold`, the same-class int8 box overlapping it most. Returns the mean and
    worst IoU of those pairs, the fraction with IoU >= 0.9 and the mean / max score difference."""
    from deploy.agreement import box_iou
    from deploy.python.infer import Detector
    from deploy.python.image_io import read_image_rgb
    from deploy.python.model_files import load_model_files
    from deploy.python.predictor import PredictorOptions
    model = load_model_files(model_dir, backend=backend)
    detectors = {mode: Detector(model, PredictorOptions(backend=backend, run_mode=mode,
                                                        cpu_threads=2))
                 for mode in ('paddle', 'int8')}
    ious, score_diffs, reference_count = [], [], 0
    for path in image_paths:
        image = read_image_rgb(path)
        (fp32,) = detectors['paddle'].predict([image], score_threshold)
        (int8,) = detectors['int8'].predict([image], 0.0)
        reference_count += len(fp32['scores'])
        for box, label, score in zip(fp32['boxes'], fp32['class_ids'], fp32['scores']):
            same = np.where(int8['class_ids'] == label)[0]
            if not len(same):
                ious.append(0.0)
                score_diffs.append(float(score))
                continue
            overlap = box_iou(box, int8['boxes'][same])
            best = int(np.argmax(overlap))
            ious.append(float(overlap[best]))
            score_diffs.append(float(abs(int8['scores'][same[best]] - score)))
    if not ious:
        return {'images': len(image_paths), 'fp32_detections': 0}
    ious, score_diffs = np.array(ious), np.array(score_diffs)
    return {'backend': backend, 'images': len(image_paths), 'fp32_detections': reference_count,
            'score_threshold': score_threshold,
            'mean_iou': round(float(ious.mean()), 4), 'min_iou': round(float(ious.min()), 4),
            'iou_ge_0.9': round(float((ious >= 0.9).mean()), 4),
            'mean_score_diff': round(float(score_diffs.mean()), 4),
            'max_score_diff': round(float(score_diffs.max()), 4)}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model_dir', required=True, help='an export made with --onnx')
    p.add_argument('--calib_image_dir', required=True, help='calibration images (a directory)')
    p.add_argument('--calib_num', type=int, default=8, help='how many of them (sorted by name)')
    p.add_argument('--prediction_convs', choices=PREDICTION_CONVS, default='fp32',
                   help="the heads' prediction convolutions (RPN objectness and box deltas, mask "
                        "logits): fp32 (default; int8 there cost most of int8's AP change) or int8")
    p.add_argument('--check_num', type=int, default=4,
                   help='compare int8 with fp32 on this many of the images (0: skip)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from deploy.python.image_io import list_images
    try:
        if args.calib_num < 1:
            raise DeployError(f"--calib_num {args.calib_num}: must be >= 1")
        if not args.calib_image_dir or not os.path.isdir(args.calib_image_dir):
            raise DeployError(f"--calib_image_dir {args.calib_image_dir!r}: no such directory")
        paths, _ = list_images(None, args.calib_image_dir)
        if not paths:
            raise DeployError(f"--calib_image_dir {args.calib_image_dir}: no image in it")
        quantize_export(args.model_dir, paths[:args.calib_num],
                        prediction_convs_as=args.prediction_convs)
        if args.check_num > 0:
            import json
            print('int8 vs fp32 (ONNX Runtime): ' + json.dumps(
                compare(args.model_dir, paths[:args.check_num])))
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
