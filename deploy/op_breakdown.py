"""Per-op latency of exported models, side by side, from the runtime's own profiler.

    python deploy/op_breakdown.py --model_dirs EXPORT_A EXPORT_B [--enable_mkldnn] [--size 800 1333]
    python deploy/op_breakdown.py --backend onnxruntime|openvino [--int8] --model_dirs ...

`--backend paddle` (the default) profiles each export's Paddle program under Paddle Inference as
deploy loads it (plain CPU or oneDNN, --enable_mkldnn_bfloat16 for its bf16): one event per op
and run from paddle.profiler's host trace, the first run (in which oneDNN creates, JIT-compiles
and caches every primitive and reorders the weights) made before profiling starts. The events
carry no shapes, so each op's input shapes come from the predictor's input hook in that first
run, matched to the traced ops in order. Control-flow instructions (`if_instruction`: the mask
head's sub-graph) are left out: their ops have events of their own.
`--backend onnxruntime` profiles each export's `model.onnx` (`model_int8.onnx` with --int8) with
ONNX Runtime's profiler (kernel time per op type, the first run left out; with more than one
thread, kernel time is the operator's span, not CPU time summed over threads);
`--backend openvino` with OpenVINO's performance counters (`PERF_COUNT`: real time per node
type as its CPU plugin ran it, fused nodes under the surviving node; `--enable_mkldnn_bfloat16`
selects its bf16 precision). Both profile the model as deploy's backend loads it: in fp32, with
the large 3x3 convolutions in Winograd form unless --winograd off (deploy/python/winograd.py).
Every backend loads every model first and then runs them in rounds, each model once per
round, the order rotating: a slow phase of the machine (on a shared VM they last tens of seconds)
falls on all models alike rather than on whichever was being profiled. With `--statistic min`
each node counts with its fastest run instead of the mean of the runs: other work on the machine
only ever adds time to a node, so the sum of per-node minima is a latency floor that
interruptions cannot raise, and with the rounds interleaved, the models' floors are comparable.
Comparable, not equal: loads of one model, profiled side by side, differ by a few percent in
their largest nodes (three loads of the control, ONNX Runtime int8: 1960 to 2034 ms), more than
GC's whole cost. So with more than one model it also prints the work each later model adds to
the first (added_work): nodes are matched by op type and input shapes, identical work cancels,
and what remains is what the later model runs that the first does not (for GC: the context,
transform and fusion nodes, and the nodes whose fusion GC changes), each at its own per-node
figure.
"""
import argparse
import bisect
import json
import os
import statistics
import sys
import tempfile

if __package__ in (None, ''):  # run as a script: make `deploy.python` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Paddle's executor reports a control-flow instruction as one event spanning the ops it runs;
# those ops have their own events, so the container's would count them twice.
CONTAINERS = ('if_instruction', 'while_instruction', 'pylayer_instruction')


class PaddleInferenceProfile:
    """One export under Paddle Inference as deploy loads it: each op's time per run from
    paddle.profiler's host trace (one event per op and run), each op's input shapes from the
    predictor's input hook in a first run (made here; oneDNN creates its primitives in it)."""

    def __init__(self, model_dir, inputs, threads, onednn, bf16, label, retain_memory=False,
                 keep_freed_memory=True):
        from deploy.python.backends.paddle_inference import create
        from deploy.python.errors import DeployError
        from deploy.python.model_files import load_model_files
        from deploy.python.predictor import PredictorOptions
        options = PredictorOptions(cpu_threads=threads, enable_mkldnn=onednn,
                                   enable_mkldnn_bfloat16=bf16, retain_memory=retain_memory,
                                   keep_freed_memory=keep_freed_memory)
        try:
            self.predictor = create(load_model_files(model_dir), options.check())
        except DeployError as e:
            raise SystemExit(f"error: {e}")
        self.inputs, self.label = inputs, label
        self.calls, calls = None, []  # (instruction, input shape), in execution order

        def record(op, _var, tensor):  # called in every run: only the first is recorded
            if self.calls is None:
                calls.append((op, tuple(tensor.shape)))
        self.predictor.predictor.register_input_hook(record)
        self.predictor.run(inputs)
        self.calls = _instructions(calls)
        self.signatures, self.times, self.order = {}, {}, None

    def run(self):
        import paddle.profiler
        with paddle.profiler.RecordEvent(self.label):
            self.predictor.run(self.inputs)

    def collect(self, ops, starts, marks):
        """Each run's ops (`ops`: the trace's op events sorted by start, `starts` their start
        times) inside this model's run markers, matched to the hooked run's ops by sequence to
        take their input shapes."""
        for mark in marks.get(self.label, []):
            lo = bisect.bisect_left(starts, mark['ts'])
            hi = bisect.bisect_right(starts, mark['ts'] + mark['dur'])
            run = [(_event_op(e), e['dur'] / 1000.0) for e in ops[lo:hi]]
            names = [op for op, _ in run]
            if self.order is None:
                self.order = names
                self.signatures = _match_shapes(names, self.calls)
            elif names != self.order:
                raise RuntimeError(f"{self.label}: the ops run differ between runs")
            for i, (op, ms) in enumerate(run):
                self.times.setdefault((op, f'{op}#{i}'), []).append(ms)

    def node_times(self):
        return self.times


def _event_op(event):
    return event['name'].split('[', 1)[0]  # the trace appends the duration: 'op[1.2 ms]'


def _instructions(calls):
    """[(op type, input shapes)] of each instruction run, from the input hook's calls (one per
    input, in no fixed order; the hook names an instruction `type:id`, ids restart inside a
    sub-block)."""
    runs = []
    for instruction, shape in calls:
        if not runs or runs[-1][0] != instruction:
            runs.append((instruction, []))
        runs[-1][1].append(shape)
    ops = [(name.rsplit(':', 1)[0], shapes) for name, shapes in runs]
    return [(op, shapes) for op, shapes in ops if op not in CONTAINERS]


def _match_shapes(names, instructions):
    """{f'{op}#{i}': (op, input shapes)} for the traced ops `names`, matched in order to the
    hooked `instructions` (ops without inputs have no hook call: their signature is the op)."""
    import difflib
    hooked = [op for op, _ in instructions]
    signatures = {}
    matcher = difflib.SequenceMatcher(None, names, hooked, autojunk=False)
    for i, op in enumerate(names):
        signatures[f'{op}#{i}'] = (op, '', '')
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            op, shapes = instructions[block.b + k]
            signatures[f'{op}#{block.a + k}'] = (op, json.dumps(sorted(shapes)), '')
    return signatures


def profile_paddle(model_dirs, height, width, runs, threads, onednn, bf16=False,
                   retain_memory=False, keep_freed_memory=True):
    """[(node times, node signatures)] of each export under Paddle Inference, every model
    loaded first and the models run interleaved under one profiler."""
    import paddle.profiler
    inputs = _inputs(height, width)
    profiles = [PaddleInferenceProfile(d, inputs, threads, onednn, bf16, f'model{i}',
                                       retain_memory, keep_freed_memory)
                for i, d in enumerate(model_dirs)]
    profiler = paddle.profiler.Profiler(targets=[paddle.profiler.ProfilerTarget.CPU],
                                        on_trace_ready=lambda _: None)
    profiler.start()
    interleave(profiles, runs)
    profiler.stop()
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, 'trace.json')
        profiler.export(path, format='json')
        with open(path) as f:
            events = json.load(f)['traceEvents']
    ops = sorted((e for e in events if e.get('cat') == 'Operator'
                  and _event_op(e) not in CONTAINERS), key=lambda e: e['ts'])
    starts = [e['ts'] for e in ops]
    marks = {}  # label -> its run markers
    for e in events:
        if e.get('cat') == 'PythonUserDefined':
            marks.setdefault(_event_op(e), []).append(e)
    results = []
    for profile in profiles:
        profile.collect(ops, starts, marks)
        results.append((profile.node_times(), profile.signatures))
    return results


def _inputs(height, width):
    import numpy as np
    return {'image': np.random.RandomState(0).randn(1, 3, height, width).astype('float32'),
            'im_shape': np.array([[height, width]], 'float32'),
            'scale_factor': np.ones((1, 2), 'float32')}


def _onnx_file(model_dir, int8):
    path = os.path.join(model_dir, 'model_int8.onnx' if int8 else 'model.onnx')
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path}: missing (export with --onnx; int8: "
                         "deploy/python/quantize.py)")
    return path


def _runtime_model(path, runtime, int8, bf16, winograd):
    """The model deploy's backend would load for `path` (runtime_model), errors as one line."""
    from deploy.python.backends.onnx_model import runtime_model
    from deploy.python.errors import DeployError
    from deploy.python.predictor import PredictorOptions
    options = PredictorOptions(backend='onnxruntime' if runtime == 'ONNX Runtime' else 'openvino',
                               run_mode='int8' if int8 else 'paddle',
                               enable_mkldnn_bfloat16=bf16, winograd=winograd)
    try:
        return runtime_model(path, options, runtime)
    except DeployError as e:
        raise SystemExit(f"error: {e}")


STATISTICS = ('mean', 'min')


def per_node(node_times, runs, statistic):
    """{(op type, node): ms} from {(op type, node): [ms in each run]}: each node's mean over
    `runs` (a run it did not execute in counts 0) or its fastest run."""
    nodes = {}
    for key, times in node_times.items():
        times = list(times) + [0.0] * (runs - len(times))
        nodes[key] = sum(times) / runs if statistic == 'mean' else min(times)
    return nodes


def per_op(node_times, runs, statistic):
    """{op type: ms}: per_node summed per op type."""
    ops = {}
    for (op, _), ms in per_node(node_times, runs, statistic).items():
        ops[op] = ops.get(op, 0.0) + ms
    return ops


class OnnxRuntimeProfile:
    """One export under ONNX Runtime's profiler: kernel time per node and run, the first run
    (made here) left out."""

    def __init__(self, model_dir, inputs, threads, int8=False, winograd=True, scratch=None):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = True
        # ONNX Runtime names the file by the second it starts: one directory per session
        options.profile_file_prefix = os.path.join(tempfile.mkdtemp(dir=scratch), 'ort')
        source = _runtime_model(_onnx_file(model_dir, int8), 'ONNX Runtime', int8, False,
                                winograd)
        self.session = onnxruntime.InferenceSession(source, options,
                                                    providers=['CPUExecutionProvider'])
        self.feed = {i.name: inputs[i.name] for i in self.session.get_inputs()}
        self.signatures = {}  # node -> (op type, input shapes, output types)
        self.run()

    def run(self):
        self.session.run(None, self.feed)

    def node_times(self):
        """{(op type, node): [ms in each run it executed in]}; ends the profiling."""
        path = self.session.end_profiling()
        with open(path) as f:
            events = json.load(f)
        os.remove(path)
        run_starts = sorted(e['ts'] for e in events
                            if e.get('cat') == 'Session' and e['name'] == 'model_run')
        node_times = {}  # (op type, node) -> {run: ms}
        for e in events:
            if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
                self.signatures.setdefault(e['name'], (
                    e['args']['op_name'], json.dumps(e['args'].get('input_type_shape')),
                    json.dumps([list(o) for o in e['args'].get('output_type_shape', [])])))
                run = bisect.bisect_right(run_starts, e['ts']) - 1
                if run >= 1:  # the first run left out
                    per_run = node_times.setdefault((e['args']['op_name'], e['name']), {})
                    per_run[run] = per_run.get(run, 0.0) + e['dur'] / 1000.0
        return {k: list(v.values()) for k, v in node_times.items()}


class OpenVinoProfile:
    """One export under OpenVINO's CPU performance counters: real time per node and run, the
    first run (made here, it compiles the model for the input's shape as deploy's OpenVINO
    backend does) left out."""

    def __init__(self, model_dir, inputs, threads, int8=False, winograd=True, bf16=False):
        import openvino
        from deploy.python.backends.openvino_backend import OpenVinoPredictor, read_model
        core, path = openvino.Core(), _onnx_file(model_dir, int8)
        source = _runtime_model(path, 'OpenVINO', int8, bf16, winograd)
        predictor = OpenVinoPredictor(core, read_model(core, path, source), {
            'INFERENCE_PRECISION_HINT': 'bf16' if bf16 else 'f32',
            'INFERENCE_NUM_THREADS': threads, 'PERF_COUNT': True}, path)
        predictor.run(inputs)
        ((compiled, self.request),) = predictor.specialised.values()
        self.feed = {name: inputs[name] for name in predictor.input_names}
        self.times = {}  # (node type, node) -> [ms in each run]
        self.signatures = {  # node -> (node type, input shapes, output precisions)
            op.get_friendly_name(): (
                op.get_rt_info()['layerType'].astype(str),
                repr([str(i.get_partial_shape()) for i in op.inputs()]),
                repr([str(o.get_element_type()) for o in op.outputs()]))
            for op in compiled.get_runtime_model().get_ordered_ops()}

    def run(self):
        self.request.infer(self.feed)
        for info in self.request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                self.times.setdefault((info.node_type, info.node_name), []).append(
                    info.real_time.total_seconds() * 1000.0)

    def node_times(self):
        return self.times


def interleave(profiles, runs):
    """`runs` rounds, each model once per round, the order rotating from round to round: a
    slow phase of the machine falls on every model alike instead of on the one profiled in it."""
    for r in range(runs):
        s = r % len(profiles)
        for profile in profiles[s:] + profiles[:s]:
            profile.run()


def run_interleaved(profiles, runs):
    interleave(profiles, runs)
    return [(profile.node_times(), profile.signatures) for profile in profiles]


def added_work(base, model, runs, statistic):
    """{op type: ms} of the work `model` adds to `base`, each a ({(op type, node): [ms]},
    {node: signature}) pair. Nodes are matched by signature (op type, input shapes, output
    types; not output shapes, which NMS makes data-dependent): nodes of one signature do the
    same work, so only a signature's count can differ, and each node more (or fewer) costs the
    signature's median node. Identical work cancels exactly instead of adding its run-to-run
    and load-to-load scatter to the difference."""
    values = {}  # signature -> ([per-node ms in base], [per-node ms in model])
    for side, (node_times, signatures) in enumerate((base, model)):
        for (op, node), ms in per_node(node_times, runs, statistic).items():
            values.setdefault(signatures.get(node, (op, node)), ([], []))[side].append(ms)
    added = {}
    for signature, (in_base, in_model) in values.items():
        if len(in_model) != len(in_base):
            node_ms = statistics.median(in_base + in_model)
            added[signature[0]] = (added.get(signature[0], 0.0)
                                   + (len(in_model) - len(in_base)) * node_ms)
    return added


def profile_onnx(backend, model_dirs, height, width, runs, threads, int8=False, winograd=True,
                 bf16=False):
    """[(node times, node signatures)] of each export, every model loaded first and the models
    run interleaved."""
    inputs = _inputs(height, width)
    with tempfile.TemporaryDirectory() as scratch:
        if backend == 'onnxruntime':
            profiles = [OnnxRuntimeProfile(d, inputs, threads, int8, winograd, scratch)
                        for d in model_dirs]
        else:
            profiles = [OpenVinoProfile(d, inputs, threads, int8, winograd, bf16)
                        for d in model_dirs]
        return run_interleaved(profiles, runs)


def markdown(names, per_model, top):
    order = sorted(set().union(*per_model), key=lambda op: -max(m.get(op, 0) for m in per_model))
    header = '| op | ' + ' | '.join(f'{n} ms' for n in names) + ' | ' + ' | '.join(
        f'{n} - {names[0]} ms' for n in names[1:]) + ' |'
    lines = [header, '| --- |' + ' ---: |' * (2 * len(names) - 1)]
    for op in order[:top]:
        values = [m.get(op, 0.0) for m in per_model]
        lines.append(f'| {op} | ' + ' | '.join(f'{v:.1f}' for v in values) + ' | ' + ' | '.join(
            f'{v - values[0]:+.1f}' for v in values[1:]) + ' |')
    totals = [sum(m.values()) for m in per_model]
    lines.append('| **all ops** | ' + ' | '.join(f'{t:.1f}' for t in totals) + ' | ' + ' | '.join(
        f'{t - totals[0]:+.1f}' for t in totals[1:]) + ' |')
    return '\n'.join(lines)


def markdown_added(names, added, base_total, top):
    """The work each later model adds to the first (added_work), per op type, and its share
    of the first model's time."""
    order = sorted(set().union(*added), key=lambda op: -max(abs(a.get(op, 0)) for a in added))
    lines = [f'Work added to {names[0]} (nodes with no same-shape node in it; identical work '
             'cancels):', '',
             '| op | ' + ' | '.join(f'{n} - {names[0]} ms' for n in names[1:]) + ' |',
             '| --- |' + ' ---: |' * len(added)]
    for op in order[:top]:
        lines.append(f'| {op} | ' + ' | '.join(f'{a.get(op, 0.0):+.1f}' for a in added) + ' |')
    totals = [sum(a.values()) for a in added]
    lines.append('| **added** | ' + ' | '.join(f'{t:+.1f}' for t in totals) + ' |')
    lines.append('| **(first + added) / first** | ' + ' | '.join(
        f'{(base_total + t) / base_total:.4f}' for t in totals) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model_dirs', nargs='+', required=True)
    p.add_argument('--size', type=int, nargs=2, default=[800, 1344], help='input tensor h w')
    p.add_argument('--runs', type=int, default=2)
    p.add_argument('--cpu_threads', type=int, default=2)
    p.add_argument('--enable_mkldnn', action='store_true')
    p.add_argument('--enable_mkldnn_bfloat16', action='store_true',
                   help='oneDNN bf16 (paddle; needs --enable_mkldnn) or bf16 (openvino)')
    p.add_argument('--backend', choices=('paddle', 'onnxruntime', 'openvino'), default='paddle')
    p.add_argument('--int8', action='store_true', help='ONNX backends: model_int8.onnx')
    p.add_argument('--retain_memory', action='store_true',
                   help="paddle: intermediate tensors kept between runs (infer.py's flag)")
    p.add_argument('--keep_freed_memory', choices=('on', 'off'), default='on',
                   help="paddle: malloc keeps the memory the process frees (infer.py's default) "
                   "or glibc's defaults")
    p.add_argument('--winograd', choices=('on', 'off'), default='on',
                   help='ONNX backends, fp32: 3x3 convolutions in Winograd form (as deploy runs '
                   'them) or direct')
    p.add_argument('--statistic', choices=STATISTICS, default='mean',
                   help="each node's mean over the runs, or its fastest run "
                   "(min: a floor that other work on the machine cannot raise)")
    p.add_argument('--top', type=int, default=25)
    p.add_argument('--output', help='also write the per-op figures as JSON here')
    args = p.parse_args(argv)
    names = [os.path.basename(os.path.normpath(d)) for d in args.model_dirs]
    if args.runs < 1:
        p.error(f"--runs {args.runs}: must be >= 1")
    if args.backend != 'paddle' and args.retain_memory:
        p.error("--retain_memory: the paddle backend only")
    if args.backend == 'paddle':
        if args.enable_mkldnn_bfloat16 and not args.enable_mkldnn:
            p.error("--enable_mkldnn_bfloat16 needs --enable_mkldnn")
        if args.int8:
            p.error("--int8: the ONNX backends only")
        profiles = profile_paddle(args.model_dirs, *args.size, args.runs, args.cpu_threads,
                                  args.enable_mkldnn, args.enable_mkldnn_bfloat16,
                                  args.retain_memory, args.keep_freed_memory == 'on')
    else:
        if args.backend == 'onnxruntime' and args.enable_mkldnn_bfloat16:
            p.error("--enable_mkldnn_bfloat16: ONNX Runtime has no bf16 CPU path")
        profiles = profile_onnx(args.backend, args.model_dirs, *args.size, args.runs,
                                args.cpu_threads, args.int8, args.winograd == 'on',
                                args.enable_mkldnn_bfloat16)
    per_model = [per_op(times, args.runs, args.statistic) for times, _ in profiles]
    added = [added_work(profiles[0], other, args.runs, args.statistic)
             for other in profiles[1:]]
    print(markdown(names, per_model, args.top))
    report = dict(zip(names, per_model))
    if added:  # more than one model
        print()
        print(markdown_added(names, added, sum(per_model[0].values()), args.top))
        report['added_work'] = dict(zip(names[1:], added))
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(report, f, indent=2)


if __name__ == '__main__':
    main()
