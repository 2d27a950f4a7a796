"""deploy/benchmark.py end to end on small models: the JSON it writes, read back (no timing is
asserted), and the torchvision reference's one-line skip when torch is missing."""
import json
import os
import sys

import pytest

from tests.tiny_config import CONTROL_CONFIG, write_tiny_config


def tiny_bottleneck_configs(repo_root, shapes_dataset, directory):
    """The tiny control and GC add configs with a ResNet50 (bottlenecks: the lean form applies)."""
    paths = {}
    for name, base, backbone in (('control', CONTROL_CONFIG, 'ResNet'),
                                 ('gc_add', None, 'GCResNet')):
        kwargs = {'base': base} if base else {}
        path = write_tiny_config(repo_root, shapes_dataset, directory, name=f'tiny_{name}',
                                 backbone=backbone, test_proposals=32, **kwargs)
        with open(path) as f:
            text = f.read().replace('depth: 18', 'depth: 50')
        with open(path, 'w') as f:
            f.write(text)
        paths[name] = path
    return paths


def test_benchmark_writes_report(repo_root, shapes_dataset, tmp_path, capsys, monkeypatch):
    from deploy import benchmark
    paths = tiny_bottleneck_configs(repo_root, shapes_dataset, tmp_path)
    out = tmp_path / 'bench'
    args = benchmark.parse_args([
        '--output_dir', str(out), '--size', '96', '96', '--image_size', '96', '128',
        '--detections', '5', '--warmup', '0', '--repeats', '2', '--modes', 'onednn_fp32',
        '--configs', 'control,gc_add', '--torchvision', 'off', '--cpu_threads', '1',
        '--config_file', f"control={paths['control']}", '--config_file',
        f"gc_add={paths['gc_add']}", '--settle', '0.01'])
    pauses = []
    real_sleep = benchmark.time.sleep
    monkeypatch.setattr(benchmark.time, 'sleep', lambda s: (pauses.append(s), real_sleep(s)))
    benchmark.run(args)
    report = json.loads((out / 'benchmark_inference.json').read_text())
    # one settling pause before each timed run: 3 models x 2 rounds
    assert pauses.count(0.01) == 6 and report['settle_s'] == 0.01
    mode = report['modes']['onednn_fp32']
    assert set(mode) >= {'control', 'gc_add', 'gc_add_lean', 'ratio_vs_control'}
    assert mode['gc_add']['runs'] == 2 and mode['gc_add']['median_ms'] > 0
    assert set(mode['ratio_vs_control']) == {'gc_add', 'gc_add_lean'}
    # the lean export is a separate model directory and gives the same detections
    assert os.path.isfile(out / 'export' / 'gc_add_lean' / 'model.json')
    lean = report['agreement_lean_vs_export']['onednn_fp32']['gc_add_lean']
    assert lean['matched_fraction'] == 1.0 and lean['max_box_error_px'] < 0.01
    assert report['configs']['gc_add']['gmacs_total'] > report['configs']['control']['gmacs_total']
    # GC add with the control's weights and its blocks as initialized: the control's detections
    # (the same NMS and RoI work in every model)
    assert report['weights'] == benchmark.SHARED_WEIGHTS
    for name in ('gc_add', 'gc_add_lean'):
        same = report['agreement_vs_control']['onednn_fp32'][name]
        assert same['matched_fraction'] == 1.0 and same['max_box_error_px'] < 0.01
    assert mode['ratio_vs_control']['gc_add']['of_minima'] == pytest.approx(
        mode['gc_add']['min_ms'] / mode['control']['min_ms'], rel=0.01)
    assert '| gc_add_lean |' in capsys.readouterr().out

    # per-op profile of two of the exports it wrote, and the work GC adds to the control
    from deploy import op_breakdown
    profile = tmp_path / 'ops.json'
    op_breakdown.main(['--model_dirs', str(out / 'export' / 'control'),
                       str(out / 'export' / 'gc_add_lean'), '--size', '96', '96', '--runs', '2',
                       '--cpu_threads', '1', '--enable_mkldnn', '--statistic', 'min',
                       '--output', str(profile)])
    ops = json.loads(profile.read_text())
    assert set(ops) == {'control', 'gc_add_lean', 'added_work'}
    for name in ('control', 'gc_add_lean'):
        assert ops[name]['onednn_op.fused_conv2d'] > 0
        assert all(ms >= 0 for ms in ops[name].values())
        assert not any(op.startswith('if_instruction') for op in ops[name])  # no double count
    # the GC context (attention softmax, pooling matmul) is work the control does not have
    added = ops['added_work']['gc_add_lean']
    assert added['onednn_op.softmax'] > 0 and added['onednn_op.matmul'] > 0
    assert '| **(first + added) / first** |' in capsys.readouterr().out
    assert not os.path.exists('profile.log') and not os.path.exists('profiler_log')

    # one export twice: the same ops, signatures and count, so no work is added
    export = str(out / 'export' / 'gc_add_lean')
    op_breakdown.main(['--model_dirs', export, export, '--size', '96', '96', '--runs', '2',
                       '--cpu_threads', '1', '--enable_mkldnn', '--output', str(profile)])
    assert json.loads(profile.read_text())['added_work']['gc_add_lean'] == {}


def test_torchvision_reference_skips_with_one_line(monkeypatch):
    from deploy import torchvision_reference
    monkeypatch.setitem(sys.modules, 'torchvision', None)  # import fails as if not installed
    ok, message = torchvision_reference.available()
    assert not ok
    assert 'pip install torch' in message and '\n' not in message


@pytest.mark.parametrize('argv, fragment', [
    (['--modes', 'onednn_fp16'], "--modes: 'onednn_fp16'"),
    (['--configs', 'gc_max'], "--configs: 'gc_max'"),
    (['--config_file', 'gc_add=/no/such.yml'], "--config_file 'gc_add=/no/such.yml'"),
    (['--settle', '-1'], "--settle -1.0"),
])
def test_benchmark_refuses_bad_arguments(argv, fragment, capsys):
    from deploy import benchmark
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args(argv)
    assert exit_info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_benchmark_onnx_backend_mode(repo_root, shapes_dataset, tmp_path):
    """The ONNX Runtime mode times the `--onnx` export through deploy's predictor interface;
    `--lean only` exports and times the GC config in the lean form alone."""
    from deploy import benchmark
    paths = tiny_bottleneck_configs(repo_root, shapes_dataset, tmp_path)
    out = tmp_path / 'bench'
    benchmark.run(benchmark.parse_args([
        '--output_dir', str(out), '--size', '96', '96', '--image_size', '96', '128',
        '--detections', '5', '--warmup', '0', '--repeats', '1', '--modes', 'onnxruntime_fp32',
        '--configs', 'gc_add', '--lean', 'only', '--torchvision', 'off', '--cpu_threads', '1',
        '--config_file', f"gc_add={paths['gc_add']}", '--settle', '0']))
    report = json.loads((out / 'benchmark_inference.json').read_text())
    timed = report['modes']['onnxruntime_fp32']
    assert timed['gc_add_lean']['runs'] == 1 and 'gc_add' not in timed
    assert os.path.isfile(out / 'export_onnx' / 'gc_add_lean' / 'model.onnx')
    assert not os.path.exists(out / 'export_onnx' / 'gc_add')
    assert not os.path.exists(out / 'export' / 'gc_add_lean' / 'model.onnx')
    assert report['agreement_lean_vs_export']['onnxruntime_fp32'] == {}

    # per-op profiles of the ONNX export from each runtime's own profiler
    # (the export twice, interleaved: two loads of one model add (next to) no work to each
    # other; OpenVINO marks a few of its tiny nodes executed in some runs and not in others)
    from deploy import op_breakdown
    export = str(out / 'export_onnx' / 'gc_add_lean')
    for backend, conv in (('onnxruntime', 'Conv'), ('openvino', 'Convolution')):
        for statistic in ('mean', 'min'):
            profile = tmp_path / f'{backend}_{statistic}.json'
            op_breakdown.main(['--backend', backend, '--model_dirs', export, export,
                               '--size', '96', '96', '--runs', '2', '--cpu_threads', '1',
                               '--statistic', statistic, '--output', str(profile)])
            report = json.loads(profile.read_text())
            ops = report['gc_add_lean']
            assert ops[conv] > 0 and all(ms >= 0 for ms in ops.values())
            added = report['added_work']['gc_add_lean']
            assert sum(abs(ms) for ms in added.values()) < 0.02 * sum(ops.values()), added


def test_op_breakdown_per_node_statistics(capsys):
    from deploy import op_breakdown
    # node b ran in one of the two runs (counts 0 in the other)
    node_times = {('Conv', 'a'): [3.0, 1.0], ('Conv', 'b'): [2.0], ('Add', 'c'): [1.0, 1.5]}
    assert op_breakdown.per_op(node_times, 2, 'mean') == {'Conv': 3.0, 'Add': 1.25}
    assert op_breakdown.per_op(node_times, 2, 'min') == {'Conv': 1.0, 'Add': 1.0}
    # added work: nodes matched by signature, a count difference costs the signature's median
    base = ({('Conv', 'a'): [3.0, 1.0], ('Add', 'b'): [1.0, 1.0]},
            {'a': ('Conv', 's1', 't'), 'b': ('Add', 's2', 't')})
    model = ({('Conv', 'a2'): [2.0, 5.0], ('Conv', 'c'): [4.0, 3.0], ('Softmax', 'd'): [0.5, 0.7]},
             {'a2': ('Conv', 's1', 't'), 'c': ('Conv', 's1', 't'), 'd': ('Softmax', 's3', 't')})
    assert op_breakdown.added_work(base, model, 2, 'min') == {
        'Conv': 2.0, 'Add': -1.0, 'Softmax': 0.5}
    assert op_breakdown.added_work(base, model, 2, 'mean') == pytest.approx({
        'Conv': 3.5, 'Add': -1.0, 'Softmax': 0.6})
    assert op_breakdown.added_work(base, base, 2, 'min') == {}
    with pytest.raises(SystemExit) as exit_info:
        op_breakdown.main(['--model_dirs', 'x', '--int8'])
    assert exit_info.value.code == 2 and '--int8' in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--model_dir 'no-such-dir': no such directory"):
        op_breakdown.main(['--model_dirs', 'no-such-dir'])


def test_op_breakdown_paddle_signatures():
    """Paddle's input hook names each instruction run `type:id` and reports its inputs in no
    fixed order; the trace has one event per op run, control flow's own event spanning its ops."""
    from deploy import op_breakdown
    calls = [('conv:0', (1, 3)), ('conv:0', (8,)), ('if_instruction:5', (1,)),
             ('conv:0', (8,)), ('conv:0', (1, 4)),  # a sub-block's ids start again at 0
             ('add:7', (1, 4)), ('add:7', (1, 4))]
    instructions = op_breakdown._instructions(calls)
    assert instructions == [('conv', [(1, 3), (8,)]), ('conv', [(8,), (1, 4)]),
                            ('add', [(1, 4), (1, 4)])]
    # the traced ops: one (`full`, no inputs) has no hook call
    signatures = op_breakdown._match_shapes(['conv', 'full', 'conv', 'add'], instructions)
    assert signatures == {
        'conv#0': ('conv', '[[1, 3], [8]]', ''), 'full#1': ('full', '', ''),
        'conv#2': ('conv', '[[1, 4], [8]]', ''), 'add#3': ('add', '[[1, 4], [1, 4]]', '')}


def test_best_against_torchvision_takes_each_models_fastest_fp32_mode():
    from deploy import benchmark

    def mode(model_ms, torchvision_ms, ratio, fastest=(None, None)):
        return {'control': {'median_ms': model_ms, 'min_ms': fastest[0] or model_ms},
                'torchvision': {'median_ms': torchvision_ms,
                                'min_ms': fastest[1] or torchvision_ms},
                'ratio_vs_torchvision': {'control': {'median': ratio}},
                'ratio_vs_torchvision_cpu': {'control': {'median': ratio + 0.01}}}
    # torchvision's fastest run (4000) is in the mode where its median is not the best
    report = {'modes': {'onednn_fp32': mode(5000, 6000, 0.84, fastest=(4500, 4000)),
                        'onnxruntime_fp32': mode(3000, 6800, 0.44),
                        'openvino_int8': {'control': {'median_ms': 2000, 'min_ms': 1900}},
                        'dygraph': {'control': {'median_ms': 20000, 'min_ms': 1000}}}}
    best = benchmark.best_against_torchvision(report)
    assert best['torchvision_best'] == {'mode': 'onednn_fp32', 'precision': 'fp32',
                                        'median_ms': 6000, 'fastest_run_ms': 4000}
    row = best['variants']['control']
    assert row['best_mode'] == 'openvino_int8' and row['best_vs_torchvision_best'] == round(
        2000 / 6000, 4)
    # fastest runs over every mode but dygraph: 1900 against torchvision's 4000
    assert row['fastest_vs_torchvision_fastest'] == round(1900 / 4000, 4)
    assert row['fp32_mode'] == 'onnxruntime_fp32' and row['fp32_vs_torchvision_fp32'] == 0.44
    assert row['fp32_vs_torchvision_fp32_cpu'] == 0.45
    table = '\n'.join(benchmark.best_table(best))
    assert "its fastest run 4.00 s" in table
    assert '| control | openvino_int8 | 2.00 | 0.333 | 0.475 | onnxruntime_fp32 | 0.44 |' in table
