"""Run an exported GCNet detector on images (PaddleDetection's deploy CLI), with Paddle Inference
(default), ONNX Runtime or OpenVINO (`--backend`; the last two need an export made with --onnx).

    python deploy/python/infer.py --model_dir output_inference/<config> --image_file demo.jpg \
        --device CPU --enable_mkldnn --cpu_threads 2 --save_results
    python deploy/python/infer.py --model_dir ... --image_file demo.jpg --backend openvino

Writes one visualised image per input and, with --save_results, `results.json` to --output_dir;
--run_benchmark times preprocess / inference / postprocess (warm-up excluded) instead, printing a
table and writing `benchmark.json`. Exit status: 0 all images done, 1 some images failed,
2 nothing could run (bad model directory, options or image paths).
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):  # run as a script: make `deploy.python` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from deploy.python.errors import DeployError  # noqa: E402
from deploy.python.image_io import list_images, read_image_rgb  # noqa: E402
from deploy.python.model_files import load_model_files  # noqa: E402
from deploy.python.predictor import PredictorOptions, create_predictor, run_predictor  # noqa: E402
from deploy.python.preprocess import build_preprocess, preprocess_image, stack_batch  # noqa: E402
from deploy.python.results import split_per_image, to_json_records  # noqa: E402
from deploy.python.timing import StageTimer, format_table  # noqa: E402
from deploy.python.visualize import (draw_detections, output_image_path,  # noqa: E402
                                     save_visualization)

# For exports whose graph pastes masks (PaddleDetection's default, not `mask_output: raw`): above
# this many original pixels the graph works in resized-image coordinates and masks are upscaled
# per kept detection afterwards, since the graph pastes every one of up to 100 masks at the
# original size, which for large photos means gigabytes (100 x 4000 x 3000 x 4 bytes).
FULL_RES_MASK_PIXELS = 1920 * 1080


def str2bool(value):
    if isinstance(value, bool):
        return value
    if value.lower() in ('true', '1', 'yes'):
        return True
    if value.lower() in ('false', '0', 'no'):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean (True/False)")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    flag = dict(type=str2bool, nargs='?', const=True, default=False)
    p.add_argument('--model_dir', required=True, help='export directory (model.json, '
                   'model.pdiparams, infer_cfg.yml)')
    p.add_argument('--image_file', help='one image')
    p.add_argument('--image_dir', help='a directory of images (non-image files are skipped)')
    p.add_argument('--backend', default='paddle', help='paddle (model.json), onnxruntime or '
                   'openvino (model.onnx; pip install -r requirements-onnx.txt)')
    p.add_argument('--device', default='CPU', help='CPU or GPU')
    p.add_argument('--run_mode', default='paddle', help='paddle, trt_fp32, trt_fp16, trt_int8 '
                   '(TensorRT, GPU), or int8 (CPU: model_int8.onnx of deploy/python/quantize.py '
                   'with --backend openvino or onnxruntime)')
    p.add_argument('--cpu_threads', type=int, default=1)
    p.add_argument('--enable_mkldnn', **flag, help='oneDNN kernels on CPU')
    p.add_argument('--enable_mkldnn_bfloat16', **flag, help='bf16 (needs AVX512-BF16/AMX): oneDNN '
                   'bf16 with paddle, bf16 inference precision with openvino')
    p.add_argument('--winograd', type=str2bool, nargs='?', const=True, default=True,
                   help='fp32 on onnxruntime/openvino: 3x3 convolutions with >= 128 channels as '
                   'Winograd F(4x4, 3x3) (about 20%% faster; rounding about 1e-5 of the '
                   'outputs); False: direct convolution')
    p.add_argument('--retain_memory', **flag, help='paddle on CPU: the executor keeps every '
                   'intermediate tensor between images (the reuse --keep_freed_memory gives, '
                   'without relying on glibc, for all of them resident at once: R50 Mask R-CNN, '
                   '800x1344, 3.7 GB)')
    p.add_argument('--keep_freed_memory', type=str2bool, nargs='?', const=True, default=True,
                   help='paddle on CPU (glibc): malloc keeps the memory the process frees, so '
                   'each image reuses the last one\'s (R50 Mask R-CNN, 800x1344, oneDNN fp32, 2 '
                   'threads: no page faults after the first images, about 0.5 GB more resident); '
                   'False: glibc\'s defaults, large blocks returned to the system when freed')
    p.add_argument('--batch_size', type=int, default=1)
    p.add_argument('--threshold', type=float, default=0.5, help='minimum score kept')
    p.add_argument('--output_dir', default='output')
    p.add_argument('--run_benchmark', **flag, help='time the stages instead of saving images')
    p.add_argument('--warmup', type=int, default=2, help='benchmark: untimed runs first')
    p.add_argument('--repeats', type=int, default=10, help='benchmark: timed passes')
    p.add_argument('--save_results', **flag, help='write results.json')
    return p


def plan_inputs(info, raw_masks, exact_scale=False):
    """Feed the true scale factor (graph maps to original pixels), or 1.0 for large images when
    the graph pastes masks (graph stays in resized pixels) unless `exact_scale` (the legacy
    pipeline, whose detections depend on the scale). Returns (im_shape, scale_factor, rescale
    for split_per_image)."""
    height, width = info['origin_shape']
    if raw_masks or exact_scale or height * width <= FULL_RES_MASK_PIXELS:
        return info['im_shape'], info['scale_factor'], None
    return info['im_shape'], np.ones(2, np.float32), tuple(float(s) for s in info['scale_factor'])


class Detector:
    """Preprocess -> predictor -> per-image detections, each stage timed."""

    def __init__(self, model, options, timer=None):
        self.model = model
        self.preprocess_ops = build_preprocess(model.preprocess)
        self.predictor = create_predictor(model, options)
        self.timer = timer or StageTimer()

    def predict(self, images_rgb, threshold):
        n = len(images_rgb)
        with self.timer.stage('preprocess', n):
            tensors, infos, shapes, factors, rescales = [], [], [], [], []
            for image in images_rgb:
                tensor, info = preprocess_image(image, self.preprocess_ops)
                im_shape, factor, rescale = plan_inputs(info, self.model.raw_masks,
                                                        self.model.legacy_pipeline)
                tensors.append(tensor), infos.append(info), rescales.append(rescale)
                shapes.append(im_shape), factors.append(factor)
            inputs = {'image': stack_batch(tensors), 'im_shape': np.stack(shapes),
                      'scale_factor': np.stack(factors)}
        with self.timer.stage('inference', n):
            outputs = run_predictor(self.predictor, inputs)
        with self.timer.stage('postprocess', n):
            detections = split_per_image(outputs, infos, threshold, rescales,
                                         mask_threshold=self.model.mask_threshold,
                                         legacy_paste=self.model.legacy_pipeline)
        return detections


def batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def read_batch(paths, failures):
    loaded = []
    for path in paths:
        try:
            loaded.append((path, read_image_rgb(path)))
        except DeployError as e:
            failures.append({'file': path, 'error': str(e)})
            print(f"[skip] {e}", file=sys.stderr)
    return loaded


def run_images(detector, paths, args, failures):
    results = []
    os.makedirs(args.output_dir, exist_ok=True)
    for paths_batch in batches(paths, args.batch_size):
        loaded = read_batch(paths_batch, failures)
        if not loaded:
            continue
        detections = detector.predict([image for _, image in loaded], args.threshold)
        for (path, image), dets in zip(loaded, detections):
            saved = save_visualization(output_image_path(args.output_dir, path),
                                       draw_detections(image, dets, detector.model.label_list))
            print(f"{path}: {len(dets['scores'])} detections -> {saved}")
            results.append({'file': path, 'height': image.shape[0], 'width': image.shape[1],
                            'detections': to_json_records(dets, detector.model.label_list)})
    return results


def run_benchmark(detector, paths, args, failures):
    loaded = read_batch(paths, failures)
    if not loaded:
        raise DeployError("no readable image to benchmark")
    groups = list(batches([image for _, image in loaded], args.batch_size))
    detector.timer.recording = False
    for i in range(max(args.warmup, 0)):
        detector.predict(groups[i % len(groups)], args.threshold)
    detector.timer.recording = True
    for _ in range(max(args.repeats, 1)):
        for group in groups:
            detector.predict(group, args.threshold)
    summary = detector.timer.summary()
    summary.update(images=len(loaded), batch_size=args.batch_size, warmup=args.warmup,
                   repeats=args.repeats, device=args.device, run_mode=args.run_mode,
                   backend=args.backend,
                   cpu_threads=args.cpu_threads, enable_mkldnn=args.enable_mkldnn,
                   enable_mkldnn_bfloat16=args.enable_mkldnn_bfloat16,
                   model_dir=args.model_dir)
    return summary


def main(argv=None):
    args = build_parser().parse_args(argv)
    failures = []
    try:
        if bool(args.image_file) == bool(args.image_dir):
            raise DeployError("give exactly one of --image_file or --image_dir")
        paths, skipped = list_images(args.image_file, args.image_dir)
        for path in skipped:
            print(f"[skip] {path}: not an image file", file=sys.stderr)
        try:  # before the model loads: an unwritable --output_dir is bad input, not a crash
            os.makedirs(args.output_dir, exist_ok=True)
            open(os.path.join(args.output_dir, '.write-test'), 'w').close()
            os.unlink(os.path.join(args.output_dir, '.write-test'))
        except OSError as e:
            raise DeployError(f"--output_dir {args.output_dir}: cannot write there "
                              f"({e.strerror or e})")
        model = load_model_files(args.model_dir, args.backend)
        options = PredictorOptions(
            device=args.device, run_mode=args.run_mode, cpu_threads=args.cpu_threads,
            enable_mkldnn=args.enable_mkldnn, enable_mkldnn_bfloat16=args.enable_mkldnn_bfloat16,
            batch_size=args.batch_size, backend=args.backend, winograd=args.winograd,
            retain_memory=args.retain_memory, keep_freed_memory=args.keep_freed_memory)
        detector = Detector(model, options)
        os.makedirs(args.output_dir, exist_ok=True)
        if args.run_benchmark:
            summary = run_benchmark(detector, paths, args, failures)
            print(format_table(summary))
            with open(os.path.join(args.output_dir, 'benchmark.json'), 'w') as f:
                json.dump(summary, f, indent=2)
            print(json.dumps(summary))
        else:
            results = run_images(detector, paths, args, failures)
            if args.save_results:
                path = os.path.join(args.output_dir, 'results.json')
                with open(path, 'w') as f:
                    json.dump({'images': results, 'failures': failures}, f)
                print(f"results -> {path}")
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if failures:
        print(f"{len(failures)} of {len(paths)} images failed", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
