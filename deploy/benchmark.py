"""Side-by-side inference benchmark: the no-GC control, GC add and GC mul Mask R-CNNs, as
PaddleDetection exports them and in the lean export form, next to torchvision's Mask R-CNN.

    python deploy/benchmark.py --output_dir output/benchmark_inference

In one run, for each config (random weights, seeded, the GC configs with the control's values for
every parameter but their GC blocks', BatchNorm statistics calibrated on the input,
RPN forced to pass on all its post-NMS proposals and the final NMS to keep --detections boxes,
so every model does the same work): parameters and MACs, an oneDNN-safe export (and, for the GC
configs, a second one in the lean form of `ppdet_gcnet.deploy.lean_gc`), then inference latency
on the same preprocessed image (800x1333 keep-ratio resize by default) with the exported models
(oneDNN fp32, oneDNN bf16; plain kernels and the dygraph models on request). torchvision's Mask
R-CNN R50-FPN (random weights, same image, 1000 RoIs, 100 detections) runs as the outside
reference, fp32 next to oneDNN fp32 and bf16 autocast next to oneDNN bf16, when it imports.

Fair ratios on a busy machine: within one mode every model, torchvision included, is timed in
turn, round after round (the starting model rotating), and ratios are taken per round, then the
median, so load from elsewhere lands on all of them alike. Warm-up runs are excluded. Prints
Markdown tables and writes everything to <output_dir>/benchmark_inference.json.

The same allocator for all: by default the whole process has malloc keep the memory it frees
(deploy/python/freed_memory.py, as deploy runs Paddle Inference), which spares Paddle Inference
and torchvision alike the page faults of taking their large tensors afresh each run;
`--keep_freed_memory off` runs every model with glibc's defaults.
"""
import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from deploy.python import freed_memory  # noqa: E402

CONFIGS = {
    'control': 'configs/gcnet/mask_rcnn_r50_vd_fpn_2x_coco.yml',
    'gc_add': 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml',
    'gc_mul': 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco.yml',
}
# Dygraph first: its outputs are the reference the exported modes are compared with.
MODES = ('dygraph', 'onednn_fp32', 'onednn_bf16', 'plain', 'onnxruntime_fp32', 'openvino_fp32',
         'openvino_bf16', 'onnxruntime_int8', 'openvino_int8')
DEFAULT_MODES = ('onednn_fp32', 'onednn_bf16')
ONNX_BACKENDS = ('onnxruntime', 'openvino')  # their modes run the `--onnx` exports
# The _int8 modes run each `--onnx` export's model_int8.onnx (deploy/python/quantize.py),
# calibrated on the benchmark's input image.
# torchvision precision timed in the same rounds as each of our modes.
TORCHVISION_PEER = {'onednn_fp32': 'fp32', 'onednn_bf16': 'bf16', 'onnxruntime_fp32': 'fp32',
                    'openvino_fp32': 'fp32', 'openvino_bf16': 'bf16'}
LEAN = '_lean'  # suffix of a config exported in the lean form
# With random weights drawn per config, the detection ops' work (NMS, TopK) differs by model
# with the boxes: measured 7-12 ms per image in OpenVINO int8 (0.6 %, one thread), as large as
# the GC costs being compared. So the GC configs share the control's values for every parameter
# the control has; their GC blocks keep their initialization (last conv zero: GC add computes the
# control's function exactly, GC mul's gate is 0.5 everywhere).
SHARED_WEIGHTS = "control's weights in every config; GC blocks as initialized"
# GCNet paper (arXiv 1904.11492), Mask R-CNN R50-FPN on COCO.
PAPER = {'control': {'params_m': 44.4, 'gflops': 279.4}, 'gc_add': {'params_m': 46.9,
                                                                     'gflops': 279.6}}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--output_dir', default='output/benchmark_inference')
    p.add_argument('--size', type=int, nargs=2, default=[800, 1333],
                   help='keep-ratio resize target (short, long)')
    p.add_argument('--image_size', type=int, nargs=2, default=[800, 1333],
                   help='generated input image height, width')
    p.add_argument('--detections', type=int, default=100)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--cpu_threads', type=int, default=2)
    p.add_argument('--modes', default=','.join(DEFAULT_MODES),
                   help=f"subset of {','.join(MODES)} (dygraph and plain take 10-20 s a run)")
    p.add_argument('--configs', default=','.join(CONFIGS), help=f"subset of {','.join(CONFIGS)}")
    p.add_argument('--config_file', action='append', default=[], metavar='NAME=PATH',
                   help='use PATH as config NAME (e.g. a smaller model for a smoke run)')
    p.add_argument('--lean', choices=('on', 'off', 'only'), default='on',
                   help='on: also export and time the GC configs in the lean form; only: the '
                   'GC configs in the lean form alone (the form export_model.py writes)')
    p.add_argument('--winograd', choices=('on', 'off'), default='on',
                   help='fp32 ONNX Runtime / OpenVINO: 3x3 convolutions in Winograd form (as '
                   'deploy/python/infer.py runs them by default) or direct')
    p.add_argument('--retain_memory', choices=('on', 'off'), default='off',
                   help='Paddle Inference modes: keep intermediate tensors between runs '
                   '(deploy/python/infer.py --retain_memory)')
    p.add_argument('--keep_freed_memory', choices=('on', 'off'), default='on',
                   help='on: the process\'s malloc keeps what it frees (glibc), as deploy/python/'
                   'infer.py runs Paddle Inference by default; a process setting, so every model '
                   'of the run, torchvision included, runs with it; off: glibc\'s defaults')
    p.add_argument('--torchvision', choices=('auto', 'off'), default='auto',
                   help="time torchvision's Mask R-CNN R50-FPN alongside (auto: if it imports)")
    p.add_argument('--settle', type=float, default=2.0,
                   help='idle seconds before each timed run (see time_mode)')
    args = p.parse_args(argv)
    if not 0 <= args.settle <= 60:
        p.error(f"--settle {args.settle}: must be within [0, 60] seconds")
    for item in args.config_file:
        name, sep, path = item.partition('=')
        if not sep or name not in CONFIGS or not os.path.isfile(path):
            p.error(f"--config_file {item!r}: give NAME=PATH with NAME in "
                    f"{', '.join(CONFIGS)} and an existing file")
    args.config_files = dict(CONFIGS, **dict(i.partition('=')[::2] for i in args.config_file))
    for mode in args.modes.split(','):
        if mode and mode not in MODES:
            p.error(f"--modes: {mode!r} is not one of {', '.join(MODES)}")
    for name in args.configs.split(','):
        if name and name not in CONFIGS:
            p.error(f"--configs: {name!r} is not one of {', '.join(CONFIGS)}")
    return args


def make_image(output_dir, height, width):
    from ppdet_gcnet.data import make_shapes_dataset
    root = make_shapes_dataset(os.path.join(output_dir, 'input'), num_train=1, num_val=1,
                               width=width, height=height, max_objects=6, seed=7)
    return os.path.join(root, 'val', sorted(os.listdir(os.path.join(root, 'val')))[0])


def load_cfg(path, size):
    from ppdet.core.workspace import load_config
    cfg = load_config(os.path.join(ROOT, path))
    cfg['pretrain_weights'] = None
    for transform in cfg['TestReader']['sample_transforms']:
        if 'Resize' in transform:
            transform['Resize']['target_size'] = list(size)
    return cfg


def build(name, args, inputs_np, shared=None):
    """Dygraph model of config `name`: random (seed 0), calibrated, fixed workload. `shared`, a
    state dict (the control's), replaces the random values of every parameter it also has."""
    import paddle
    from ppdet.core.workspace import create
    from ppdet_gcnet.deploy import use_raw_masks
    from ppdet_gcnet.deploy.export import (calibrate_batch_norm, force_detections,
                                           force_proposals)
    cfg = load_cfg(args.config_files[name], args.size)
    paddle.seed(0)
    model = create(cfg.architecture)
    if shared:
        own = model.state_dict()
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in shared.items()
                              if k in own and list(own[k].shape) == list(v.shape)})
    calibrate_batch_norm(model, to_tensors(inputs_np))
    force_proposals(model)
    force_detections(model, args.detections)
    # Masks leave the network as [N, 28, 28] probabilities in every mode (exports do the same);
    # deploy's paste of the kept masks is timed on its own.
    use_raw_masks(model)
    return cfg, model


def to_tensors(inputs_np):
    import paddle
    return {k: paddle.to_tensor(v) for k, v in inputs_np.items()}


def preprocess(image_path, size):
    from deploy.python.image_io import read_image_rgb
    from deploy.python.preprocess import build_preprocess, preprocess_image
    ops = build_preprocess([
        {'type': 'Resize', 'target_size': list(size), 'keep_ratio': True, 'interp': 2},
        {'type': 'NormalizeImage', 'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225],
         'is_scale': True},
        {'type': 'Permute'}, {'type': 'PadStride', 'stride': 32}])
    image, info = preprocess_image(read_image_rgb(image_path), ops)
    return {'image': image[None], 'im_shape': info['im_shape'][None],
            'scale_factor': info['scale_factor'][None]}


class PredictorRunner:
    def __init__(self, export_dir, mode, threads, winograd=True, retain_memory=False,
                 keep_freed_memory=True):
        from deploy.python.model_files import load_model_files
        from deploy.python.predictor import PredictorOptions, create_predictor
        backend = mode.split('_')[0] if mode.split('_')[0] in ONNX_BACKENDS else 'paddle'
        options = PredictorOptions(cpu_threads=threads, enable_mkldnn=mode.startswith('onednn'),
                                   enable_mkldnn_bfloat16=mode.endswith('_bf16'), backend=backend,
                                   run_mode='int8' if mode.endswith('_int8') else 'paddle',
                                   winograd=winograd,
                                   retain_memory=retain_memory and backend == 'paddle',
                                   keep_freed_memory=keep_freed_memory)
        self.predictor = create_predictor(load_model_files(export_dir), options)

    def __call__(self, inputs_np):
        from deploy.python.predictor import run_predictor
        out = run_predictor(self.predictor, inputs_np)
        return out['boxes'], out['masks']


class DygraphRunner:
    def __init__(self, model):
        self.model = model

    def __call__(self, inputs_np):
        import paddle
        with paddle.no_grad():
            out = self.model(to_tensors(inputs_np))
        return out['bbox'].numpy(), out['mask'].numpy()


def summarize(seconds):
    ms = np.array(seconds) * 1000.0
    return {'median_ms': round(float(np.median(ms)), 1),
            'p90_ms': round(float(np.percentile(ms, 90)), 1), 'min_ms': round(float(ms.min()), 1),
            'runs': len(ms)}


def time_mode(runners, inputs_np, args, expected):
    """Interleaved rounds over the runners, the first one rotating each round (so none always
    follows the same neighbour); returns per-runner wall seconds, per-runner process CPU seconds
    (all threads; less sensitive than wall time to other jobs taking the cores) and the last
    outputs. Each timed run starts after `args.settle` idle seconds: thread pools keep spinning
    after a run (ONNX Runtime's workers by default, OpenMP's for its block time), and all
    runners share this process, so without a pause the previous model's spinning threads take
    cores from the one being timed and their CPU time is charged to it."""
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    outputs = {}
    names = list(runners)
    for _ in range(args.warmup):
        for name in names:
            outputs[name] = runners[name](inputs_np)
    for round_index in range(args.repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(args.settle)
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = runners[name](inputs_np)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    for name, (boxes, _) in outputs.items():
        if len(boxes) != expected:
            raise RuntimeError(f"{name}: {len(boxes)} detections, expected {expected}: the "
                               "workload is not fixed")
    return times, cpu, outputs


def paired_ratios(times, name, reference='control'):
    """Per-round latency ratio name / reference (same round = same machine load)."""
    ratios = np.array(times[name]) / np.array(times[reference])
    # the fastest rounds' ratio: noise from elsewhere only ever adds time
    return {'median': round(float(np.median(ratios)), 4),
            'min': round(float(ratios.min()), 4), 'max': round(float(ratios.max()), 4),
            'of_minima': round(float(min(times[name]) / min(times[reference])), 4)}


def time_host_stages(image_path, size, boxes, masks, repeats):
    """Median seconds of deploy's preprocessing and of pasting all `boxes`' masks at full size."""
    from deploy.python.image_io import read_image_rgb
    from deploy.python.results import split_per_image
    image = read_image_rgb(image_path)
    info = {'origin_shape': image.shape[:2]}
    outputs = {'boxes': boxes, 'boxes_num': np.array([len(boxes)], np.int32), 'masks': masks}
    pre, paste = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        preprocess(image_path, size)
        pre.append(time.perf_counter() - start)
        start = time.perf_counter()
        split_per_image(outputs, [info], 0.0, [None])
        paste.append(time.perf_counter() - start)
    return {'preprocess': summarize(pre), 'paste_all_masks': summarize(paste)}


def export_variants(name, args, inputs_np, report, onnx=False, shared=None):
    """Export config `name` (and its lean form for GC configs), built with `shared` weights
    (see build); returns {variant: export dir} and the dygraph state for the dygraph mode."""
    import paddle
    from deploy.model_cost import count_macs, count_parameters
    from ppdet_gcnet.deploy.export import export_model
    from ppdet_gcnet.deploy.lean_gc import use_lean_gc
    cfg, model = build(name, args, inputs_np, shared)
    macs = count_macs(model, to_tensors(inputs_np))
    report['configs'][name] = {
        'config': args.config_files[name], 'params_m': round(count_parameters(model) / 1e6, 3),
        'gmacs': {k: round(v / 1e9, 4) for k, v in macs.items()},
        'gmacs_total': round(sum(macs.values()) / 1e9, 4), 'paper': PAPER.get(name)}
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    dirs = {}
    lean_forms = [] if args.lean == 'off' or name == 'control' else [(LEAN, use_lean_gc)]
    forms = ([] if lean_forms and args.lean == 'only' else [('', None)]) + lean_forms
    # ONNX exports (for the ONNX Runtime / OpenVINO modes) go to their own directories: the
    # export rewrites for ONNX change the Paddle graph too.
    for kind in ('export',) + (('export_onnx',) if onnx else ()):
        for suffix, rewrite in forms:
            _, exported = build(name, args, inputs_np)
            exported.set_state_dict(model.state_dict())
            exported.eval()
            if rewrite is not None and not rewrite(exported):
                if args.lean != 'only':
                    continue  # no block this form applies to (e.g. basic-block ResNets)
                suffix = ''  # lean only, and no block it applies to: the plain form stands in
            dirs[(kind, name + suffix)] = os.path.join(args.output_dir, kind, name + suffix)
            with export_forms_without(None if suffix else 'lean_gc'):
                export_model(cfg, exported, dirs[(kind, name + suffix)], raw_masks=True,
                             onnx=kind == 'export_onnx')
            paddle.disable_static()
            del exported
    del model
    gc.collect()
    print(f"[benchmark] {name}: {report['configs'][name]}", file=sys.stderr)
    return dirs, state


@contextlib.contextmanager
def export_forms_without(name):
    """Export without the rewrite `name` (the export as PaddleDetection's graph has it, for the
    comparison); None leaves the export forms as they are."""
    from ppdet_gcnet.deploy import export_forms
    saved = list(export_forms.EXPORT_FORMS)
    export_forms.EXPORT_FORMS[:] = [f for f in saved if f[0] != name]
    try:
        yield
    finally:
        export_forms.EXPORT_FORMS[:] = saved


def torchvision_runners(args, image_path, modes, report):
    """{'torchvision_fp32'/'torchvision_bf16': runner} for the precisions `modes` pair with."""
    from deploy.torchvision_reference import TorchvisionMaskRCNN, available
    if args.torchvision == 'off':
        return {}
    ok, message = available()
    report['torchvision'] = {'available': ok, 'note': message}
    print(f"[benchmark] {message}", file=sys.stderr)
    if not ok:
        return {}
    from deploy.python.image_io import read_image_rgb
    image = read_image_rgb(image_path)
    return {mode: TorchvisionMaskRCNN(image, TORCHVISION_PEER[mode], args.cpu_threads,
                                      args.detections, args.size)
            for mode in modes if mode in TORCHVISION_PEER}


def run(args):
    import paddle
    import ppdet_gcnet  # noqa: F401
    from deploy.agreement import agreement
    from deploy.python.cpu_features import has_bf16

    # the control first: the GC configs take its weights (see SHARED_WEIGHTS)
    configs = sorted([c for c in args.configs.split(',') if c], key=lambda c: c != 'control')
    modes = [m for m in args.modes.split(',') if m]
    for mode in [m for m in modes if m.endswith('_bf16')]:
        if not has_bf16():
            print(f'[benchmark] this CPU has no bf16: skipping {mode}', file=sys.stderr)
            modes.remove(mode)
    os.makedirs(args.output_dir, exist_ok=True)
    image_path = make_image(args.output_dir, *args.image_size)
    inputs_np = preprocess(image_path, args.size)
    paddle.set_device('cpu')
    if args.keep_freed_memory == 'on':  # before anything large is allocated and freed
        freed_memory.keep_freed_memory()

    report = {'command': 'python deploy/benchmark.py ' + ' '.join(sys.argv[1:]),
              'input': {'image_hw': list(args.image_size), 'resize': list(args.size),
                        'tensor_hw': list(inputs_np['image'].shape[2:])},
              'detections': args.detections, 'cpu_threads': args.cpu_threads,
              'warmup': args.warmup, 'repeats': args.repeats, 'settle_s': args.settle,
              'fp32_onnx_convolutions': 'winograd' if args.winograd == 'on' else 'direct',
              'paddle_retain_memory': args.retain_memory == 'on',
              'malloc_keeps_freed_memory': freed_memory.in_effect(),
              'weights': SHARED_WEIGHTS if 'control' in configs else 'random',
              'cpu': platform.processor() or platform.machine(), 'paddle': paddle.__version__,
              'load_average_at_start': list(os.getloadavg()), 'configs': {}, 'modes': {}}
    states, export_dirs = {}, {}
    onnx = any(m.split('_')[0] in ONNX_BACKENDS for m in modes)
    for name in configs:
        dirs, states[name] = export_variants(name, args, inputs_np, report, onnx,
                                             shared=states.get('control'))
        export_dirs.update(dirs)
    variants = [name for kind, name in export_dirs if kind == 'export']
    if any(m.endswith('_int8') for m in modes):
        from deploy.python.quantize import quantize_export
        for (kind, name), path in export_dirs.items():
            if kind == 'export_onnx':
                quantize_export(path, [image_path], log=lambda m: print(f"[benchmark] {m}",
                                                                        file=sys.stderr))
    fp32_outputs = {}  # per ONNX backend, the fp32 mode's outputs, for its int8 mode
    peers = torchvision_runners(args, image_path, modes, report)

    reference = None  # dygraph outputs, kept only as long as they are needed
    for mode in modes:
        if mode == 'dygraph':
            runners = {}
            for name in configs:
                _, model = build(name, args, inputs_np)
                model.set_state_dict({k: paddle.to_tensor(v) for k, v in states[name].items()})
                runners[name] = DygraphRunner(model)
        else:
            kind = 'export_onnx' if mode.split('_')[0] in ONNX_BACKENDS else 'export'
            runners = {name: PredictorRunner(export_dirs[(kind, name)], mode, args.cpu_threads,
                                             args.winograd == 'on', args.retain_memory == 'on',
                                             args.keep_freed_memory == 'on')
                       for name in variants}
        if mode in peers:
            runners['torchvision'] = peers[mode]
        times, cpu, outputs = time_mode(runners, inputs_np, args, args.detections)
        entry = report['modes'][mode] = {
            name: dict(summarize(times[name]), cpu_median_ms=summarize(cpu[name])['median_ms'])
            for name in runners}
        for suffix, seconds in (('', times), ('_cpu', cpu)):
            if 'control' in runners:
                entry['ratio_vs_control' + suffix] = {
                    name: paired_ratios(seconds, name) for name in runners
                    if name not in ('control', 'torchvision')}
            if 'torchvision' in runners:
                entry['ratio_vs_torchvision' + suffix] = {
                    name: paired_ratios(seconds, name, 'torchvision') for name in runners
                    if name != 'torchvision'}
        if mode == 'dygraph':
            reference = outputs
        elif mode == 'onednn_fp32':
            report['host_stages'] = time_host_stages(image_path, args.size,
                                                     *outputs[configs[0]], args.repeats)
        if mode != 'dygraph' and reference is not None:
            report.setdefault('agreement_vs_dygraph', {})[mode] = {
                name: agreement(*reference[name.replace(LEAN, '')], *outputs[name])
                for name in variants}
        backend = mode.split('_')[0]
        if mode == backend + '_fp32' and backend in ONNX_BACKENDS:
            fp32_outputs[backend] = outputs
        elif mode.endswith('_int8') and backend in fp32_outputs:
            report.setdefault('agreement_int8_vs_fp32', {})[mode] = {
                name: agreement(*fp32_outputs[backend][name], *outputs[name])
                for name in variants}
        if 'control' in outputs:  # the workload: GC add computes the control's function
            report.setdefault('agreement_vs_control', {})[mode] = {
                name: agreement(*outputs['control'], *outputs[name])
                for name in variants if name != 'control'}
        if mode != 'dygraph':  # lean form against the PaddleDetection form, same mode
            report.setdefault('agreement_lean_vs_export', {})[mode] = {
                name: agreement(*outputs[name.replace(LEAN, '')], *outputs[name])
                for name in variants
                if name.endswith(LEAN) and name.replace(LEAN, '') in outputs}
        print(f"[benchmark] {mode}: {json.dumps(entry)}", file=sys.stderr)
        del runners, outputs
        gc.collect()
    report['best_vs_torchvision'] = best_against_torchvision(report)

    path = os.path.join(args.output_dir, 'benchmark_inference.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(report, f, indent=2)
    os.replace(path + '.tmp', path)
    print(markdown(report))
    return report


def _fastest_run(report, name):
    """`name`'s fastest timed run over every mode but dygraph (ms), or None."""
    runs = [report['modes'][m][name]['min_ms'] for m in report['modes']
            if m != 'dygraph' and 'min_ms' in report['modes'][m].get(name, {})]
    return min(runs) if runs else None


def best_against_torchvision(report):
    """Each variant's fastest mode against torchvision's fastest precision (medians, possibly of
    different rounds), the same with each side's single fastest run (torchvision's time spreads
    widely between runs and between processes; its fastest run is the stricter reference), and
    each variant's fastest fp32 mode against torchvision fp32 (same rounds)."""
    tv = {m: report['modes'][m]['torchvision']['median_ms'] for m in report['modes']
          if 'torchvision' in report['modes'][m]}
    if not tv:
        return None
    tv_best_mode = min(tv, key=tv.get)
    tv_fastest = _fastest_run(report, 'torchvision')
    result = {'torchvision_best': {'mode': tv_best_mode, 'precision':
                                   TORCHVISION_PEER[tv_best_mode], 'median_ms': tv[tv_best_mode],
                                   'fastest_run_ms': tv_fastest},
              'variants': {}}
    names = {n for m in report['modes'].values() for n in m
             if n != 'torchvision' and not n.startswith('ratio_')}
    for name in sorted(names):
        timed = {m: report['modes'][m][name]['median_ms'] for m in report['modes']
                 if name in report['modes'][m] and m != 'dygraph'}
        if not timed:
            continue
        best = min(timed, key=timed.get)
        row = {'best_mode': best, 'best_ms': timed[best],
               'best_vs_torchvision_best': round(timed[best] / tv[tv_best_mode], 4)}
        fastest = _fastest_run(report, name)
        if fastest and tv_fastest:
            row['fastest_vs_torchvision_fastest'] = round(fastest / tv_fastest, 4)
        for suffix in ('', '_cpu'):
            key = 'ratio_vs_torchvision' + suffix
            fp32 = {m: report['modes'][m][key][name]['median'] for m in report['modes']
                    if m.endswith('_fp32') and name in report['modes'][m].get(key, {})}
            if fp32:
                mode = min(fp32, key=fp32.get)
                row['fp32_vs_torchvision_fp32' + suffix] = fp32[mode]
                row['fp32_mode' + suffix] = mode
        result['variants'][name] = row
    return result


# Agreement tables after the timing ones: report key, title, (field, header, format) columns
# after the fraction of shared top-K boxes.
_BOX = ('max_box_error_px', 'max box err px', '{:.4f}')
AGREEMENT_TABLES = (
    ('agreement_int8_vs_fp32', 'int8 vs fp32, same backend',
     (_BOX, ('max_score_error', 'max score err', '{:.4f}'),
      ('mean_mask_iou', 'mean mask IoU', '{}'))),
    ('agreement_vs_control', 'workload vs control (same weights)', (_BOX,)),
    ('agreement_lean_vs_export', 'lean vs PaddleDetection form',
     (_BOX, ('max_mask_prob_error', 'max mask prob err', '{}'))))


def _agreement_table(report, key, title, columns):
    rows = [(mode, name, a) for mode, per in report.get(key, {}).items()
            for name, a in per.items()]
    if not rows:
        return []
    headers = ['same top-K box (IoU>=0.9)'] + [header for _, header, _ in columns]
    lines = ['', f'| {title} | mode | ' + ' | '.join(headers) + ' |',
             '| --- | --- |' + ' ---: |' * len(headers)]
    for mode, name, a in rows:
        cells = [f"{a['matched_fraction']:.3f}"] + [fmt.format(a[field])
                                                    for field, _, fmt in columns]
        lines.append(f'| {name} | {mode} | ' + ' | '.join(cells) + ' |')
    return lines


def _ratio_cell(ratio):
    if ratio is None:
        return '-'
    fastest = f" ({ratio['of_minima']:.3f})" if 'of_minima' in ratio else ''
    return f"{ratio['median']:.3f}{fastest}"


def best_table(best):
    """Markdown lines of `best_against_torchvision`'s result."""
    tv = best['torchvision_best']
    fastest = tv.get('fastest_run_ms')
    lines = ['', f"Against torchvision's fastest mode ({tv['precision']}, "
             f"{tv['median_ms'] / 1000:.2f} s median"
             + (f"; its fastest run {fastest / 1000:.2f} s" if fastest else '') + '):', '',
             '| model | best mode | s | best / torchvision best | fastest run / '
             "torchvision's fastest | best fp32 mode | fp32 / torchvision fp32 |",
             '| --- | --- | ---: | ---: | ---: | --- | ---: |']
    for name, row in best['variants'].items():
        lines.append(f"| {name} | {row['best_mode']} | {row['best_ms'] / 1000:.2f} | "
                     f"{row['best_vs_torchvision_best']:.3f} | "
                     f"{row.get('fastest_vs_torchvision_fastest', '-')} | "
                     f"{row.get('fp32_mode', '-')} | "
                     f"{row.get('fp32_vs_torchvision_fp32', '-')} |")
    return lines


def markdown(report):
    modes = list(report['modes'])
    configs = list(report['configs'])
    rows = []  # every timed model, in first-seen order
    for m in modes:
        rows += [n for n in report['modes'][m] if not n.startswith('ratio_') and n not in rows]
    load = report.get('load_average_at_start')
    lines = [f"Input {report['input']['image_hw'][0]}x{report['input']['image_hw'][1]} -> "
             f"tensor {report['input']['tensor_hw'][0]}x{report['input']['tensor_hw'][1]}, "
             f"{report['detections']} detections forced, {report['cpu_threads']} threads, "
             f"{report['repeats']} timed rounds after {report['warmup']} warm-up"
             + (f", fp32 ONNX 3x3 convolutions {report['fp32_onnx_convolutions']}"
                if 'fp32_onnx_convolutions' in report else '')
             + (f", load average {load[0]:.1f} at start" if load else '') + '.'
             + (f" Weights: {report['weights']}." if report.get('weights', 'random') != 'random'
                else ''), '',
             '| model | ' + ' | '.join(f'{m} median (p90) s' for m in modes) + ' |',
             '| --- |' + ' ---: |' * len(modes)]
    for name in rows:
        cells = [f"{report['modes'][m][name]['median_ms'] / 1000:.2f} "
                 f"({report['modes'][m][name]['p90_ms'] / 1000:.2f})"
                 if name in report['modes'][m] else '-' for m in modes]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    for key, title in (('ratio_vs_control', 'latency / control'),
                       ('ratio_vs_control_cpu', 'process CPU time / control'),
                       ('ratio_vs_torchvision', 'latency / torchvision (same precision)'),
                       ('ratio_vs_torchvision_cpu', 'process CPU time / torchvision')):
        names = [n for n in rows if any(n in report['modes'][m].get(key, {}) for m in modes)]
        if not names:
            continue
        lines += ['', f'| {title}, median of per-round ratios (ratio of the fastest rounds) | '
                  + ' | '.join(modes) + ' |', '| --- |' + ' ---: |' * len(modes)]
        for name in names:
            lines.append(f'| {name} | ' + ' | '.join(
                _ratio_cell(report['modes'][m].get(key, {}).get(name)) for m in modes) + ' |')
    best = report.get('best_vs_torchvision')
    if best:
        lines += best_table(best)
    elif report.get('torchvision'):
        lines += ['', report['torchvision']['note']]
    if 'dygraph' in modes:
        lines += ['', '| speed-up vs dygraph | ' + ' | '.join(m for m in modes if m != 'dygraph')
                  + ' |', '| --- |' + ' ---: |' * (len(modes) - 1)]
        for name in configs:
            dy = report['modes']['dygraph'][name]['median_ms']
            lines.append(f'| {name} | ' + ' | '.join(
                f"{dy / report['modes'][m][name]['median_ms']:.2f}x"
                for m in modes if m != 'dygraph') + ' |')
    lines += ['', '| config | params (M) | paper params (M) | GMACs, whole run | backbone GMACs | '
              'GMACs vs control | paper GFLOPs |',
              '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    base = report['configs'].get('control', {}).get('gmacs_total')
    for name in configs:
        c = report['configs'][name]
        paper = c['paper'] or {}
        extra = f"+{100 * (c['gmacs_total'] / base - 1):.3f} %" if base else '-'
        lines.append(f"| {name} | {c['params_m']:.2f} | {paper.get('params_m', '-')} | "
                     f"{c['gmacs_total']:.2f} | {c['gmacs'].get('backbone', 0):.2f} | {extra} | "
                     f"{paper.get('gflops', '-')} |")
    if 'host_stages' in report and 'onednn_fp32' in report['modes']:
        host = report['host_stages']
        infer_ms = report['modes']['onednn_fp32'][configs[0]]['median_ms']
        total = (host['preprocess']['median_ms'] + infer_ms
                 + host['paste_all_masks']['median_ms']) / 1000
        lines += ['', f"End to end, {configs[0]}, oneDNN fp32: preprocess "
                  f"{host['preprocess']['median_ms']:.0f} ms + inference {infer_ms:.0f} ms + "
                  f"pasting all {report['detections']} masks at full size "
                  f"{host['paste_all_masks']['median_ms']:.0f} ms = {total:.2f} s per image."]
    agreement_rows = [a for per_config in report.get('agreement_vs_dygraph', {}).values()
                      for a in per_config.values()]
    if agreement_rows and not any(a['matched_fraction'] for a in agreement_rows):
        lines += ['', 'Agreement with dygraph: not measurable in this run (no top-K box shared: '
                  'the class scores tie, e.g. all saturated at 1.0, so the top-K pick is arbitrary).']
    elif agreement_rows:
        lines += ['', '| vs dygraph | config | same top-K box (IoU>=0.9) | max box err px | '
                  'max score err | max mask prob err | mean mask IoU |',
                  '| --- | --- | ---: | ---: | ---: | ---: | ---: |']
        for mode, per_config in report['agreement_vs_dygraph'].items():
            for name, a in per_config.items():
                lines.append(f"| {mode} | {name} | {a['matched_fraction']:.3f} | "
                             f"{a['max_box_error_px']:.4f} | {a['max_score_error']:.6f} | "
                             f"{a['max_mask_prob_error']} | {a['mean_mask_iou']} |")
    for key, title, columns in AGREEMENT_TABLES:
        lines += _agreement_table(report, key, title, columns)
    return '\n'.join(lines)


if __name__ == '__main__':
    run(parse_args())
