"""The pip package: a wheel built from the checkout, installed into a new virtual environment
outside the checkout, gives `ppdet-gcnet` with the tools as subcommands and the bundled configs.

The new environment sees the test interpreter's site-packages (Paddle, ppdet, ...) through a
`.pth` file, so nothing is downloaded; ppdet_gcnet itself comes only from the wheel."""
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

import pytest

from tool_runner import ROOT

QUICKSTART = 'gcnet/shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes.yml'
GC_ROW = 'gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml'


def _run(command, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # no checkout on the path
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """A wheel built from a copy of the checkout's files (the build writes beside its sources)."""
    work = tmp_path_factory.mktemp('build')
    source = work / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', 'build')
    source.mkdir()
    for name in ('pyproject.toml', 'README.md'):
        shutil.copy(os.path.join(ROOT, name), source / name)
    for name in ('ppdet_gcnet', 'tools', 'configs'):
        shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)
    result = _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--quiet',
                   '-w', str(work / 'dist'), str(source)], cwd=str(work))
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = (work / 'dist').glob('ppdet_gcnet-*.whl')
    return path


@pytest.fixture(scope='module')
def venv(wheel, tmp_path_factory):
    """A new venv with the wheel installed; the rest of the stack comes from this interpreter."""
    root = tmp_path_factory.mktemp('venv') / 'env'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(root)], check=True)
    python = root / 'bin' / 'python'
    site = _run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                cwd=str(root)).stdout.strip()
    with open(os.path.join(site, 'test_stack.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    result = _run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps',
                   '--no-index', '--quiet', str(wheel)], cwd=str(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def _lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith('error:')]


def test_wheel_carries_tools_configs_and_the_console_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for tool in ('train.py', 'eval.py', 'infer.py', 'export_model.py', '_path.py'):
        assert f'ppdet_gcnet/tools/{tool}' in names
    assert f'ppdet_gcnet/configs/{QUICKSTART}' in names
    assert 'ppdet_gcnet/configs/gcnet/_base_/gc_resnet50_vd.yml' in names
    (entry_points,) = [n for n in names if n.endswith('entry_points.txt')]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert 'ppdet-gcnet = ppdet_gcnet.commands:main' in text


def test_pyproject_lists_every_subpackage():
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        listed = set(tomllib.load(f)['tool']['setuptools']['packages'])
    found = {os.path.relpath(folder, ROOT).replace(os.sep, '.')
             for folder, _, files in os.walk(os.path.join(ROOT, 'ppdet_gcnet'))
             if '__init__.py' in files}
    assert found <= listed


def test_runtime_dependencies_match_requirements_common():
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        declared = tomllib.load(f)['project']['dependencies']
    with open(os.path.join(ROOT, 'requirements-common.txt')) as f:
        pinned = {line.split('#')[0].strip() for line in f} - {''}
    # requirements-common.txt pins the tested release; the package accepts any paddledet
    # (upstream builds from source call themselves 0.0.0).
    pinned = {'paddledet' if r.startswith('paddledet') else r for r in pinned}
    assert set(declared) <= pinned, set(declared) - pinned


def test_dev_extra_matches_requirements_dev():
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        dev = set(tomllib.load(f)['project']['optional-dependencies']['dev'])
    with open(os.path.join(ROOT, 'requirements-dev.txt')) as f:
        pinned = {line.split('#')[0].strip() for line in f} - {''}
    assert dev - {'pytest'} == pinned


def test_help_lists_every_subcommand(venv, tmp_path):
    from ppdet_gcnet.commands import COMMANDS
    result = _run([str(venv / 'bin' / 'ppdet-gcnet'), '--help'], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith('  ')]
    assert listed == list(COMMANDS)


def test_unknown_subcommand_is_a_one_line_error(venv, tmp_path):
    result = _run([str(venv / 'bin' / 'ppdet-gcnet'), 'trian', '-c', QUICKSTART],
                  cwd=str(tmp_path))
    assert result.returncode == 2
    assert _lines(result) == ["error: 'trian' is not a subcommand; choose from train, eval, "
                              "infer, export, download-weights, convert-legacy-weights, "
                              "convert-mmdet-weights, visualize-context, make-shapes-dataset"]
    assert 'Traceback' not in result.stderr


def test_unknown_config_name_is_a_one_line_error(venv, tmp_path):
    typo = GC_ROW.replace('_2x_', '_3x_')
    result = _run([str(venv / 'bin' / 'ppdet-gcnet'), 'eval', '-c', typo, '-o', 'weights=x'],
                  cwd=str(tmp_path))
    assert result.returncode == 2
    (line,) = _lines(result)
    assert line.startswith(f'error: -c {typo}: no such config file, nor one of the ')
    assert f'bundled configs (closest: {GC_ROW}, ' in line and 'Traceback' not in result.stderr


def test_bundled_config_names_resolve_inside_the_installed_package(venv, tmp_path):
    code = (f"import ppdet_gcnet\n"
            f"from ppdet_gcnet.cli import config_path\n"
            f"from ppdet.core.workspace import load_config\n"
            f"path = config_path({GC_ROW!r})\n"
            f"assert config_path('configs/' + {GC_ROW!r}) == path\n"
            f"cfg = load_config(path)\n"
            f"print(ppdet_gcnet.__file__)\n"
            f"print(path)\n"
            f"print(cfg.architecture, cfg.MaskRCNN['backbone'], cfg.GCResNet['gc_stages'], "
            f"cfg.GCResNet['gc_fusion_types'], cfg.epoch)\n")
    result = _run([str(venv / 'bin' / 'python'), '-c', code], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    package_file, path, summary = result.stdout.strip().splitlines()[-3:]
    assert package_file.startswith(str(venv)) and path.startswith(str(venv))
    assert path.endswith('ppdet_gcnet/configs/' + GC_ROW)
    # values from the _base_ files (backbone, 2x schedule) and from the row itself
    assert summary == "MaskRCNN GCResNet [1, 2, 3] ['channel_add'] 24"


def test_installed_command_makes_data_and_trains_the_quickstart_config(venv, tmp_path):
    command = str(venv / 'bin' / 'ppdet-gcnet')
    result = _run([command, 'make-shapes-dataset', '--output_dir', 'dataset/shapes',
                   '--num_train', '4', '--num_val', '2', '--width', '128', '--height', '128'],
                  cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    result = _run([command, 'train', '-c', QUICKSTART, '--seed', '0', '-o', 'epoch=1',
                   'TrainReader.batch_size=2', 'save_dir=out', 'log_iter=1'],
                  cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'Epoch: [0] [1/2]' in log and 'loss_mask' in log
    import paddle
    import ppdet_gcnet  # noqa: F401  (registers GCResNet)
    from ppdet.core.workspace import create, load_config
    name = os.path.splitext(os.path.basename(QUICKSTART))[0]
    state = paddle.load(str(tmp_path / 'out' / name / 'model_final.pdparams'))
    # the trained model carries the GC blocks the checkout's config describes (8 tensors each)
    model = create(load_config(os.path.join(ROOT, 'configs', QUICKSTART)).architecture)
    expected = {k for k in model.state_dict() if '.gc_block.' in k}
    blocks = len(model.backbone.gc_blocks)
    assert blocks >= 3 and len(expected) == 8 * blocks
    assert {k for k in state if '.gc_block.' in k} == expected
