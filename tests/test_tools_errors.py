"""Bad command lines and config values end in one clear line on stderr, exit status 2, fast
(before any data is read)."""
import pytest

from tool_runner import QUICKSTART_CONFIG, run_tool


def _error_line(result):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
    assert len(lines) == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    return lines[0]


@pytest.mark.parametrize('override,needle', [
    ('GCResNet.gc_pooling_type=max', "GCResNet.gc_pooling_type: 'max' is not supported"),
    ('GCResNet.gc_fusion_types=[]', "GCResNet.gc_fusion_types: []"),
    ('GCResNet.gc_ratio=0', "GCResNet.gc_ratio: 0 is not allowed"),
    ('GCResNet.gc_stages=[1,5]', "GCResNet.gc_stages: 5 is out of range"),
    ('GCResNet.depth=26', "GCResNet.depth: 26 is not supported"),
    ('GCResNet.gc_ratoi=0.25', "GCResNet.gc_ratoi: unknown key"),
    ('use_gpu', "-o 'use_gpu': expected key=value"),
])
def test_bad_config_values(override, needle):
    result = run_tool('tools/train.py', '-c', QUICKSTART_CONFIG, '-o', override,
                      'TrainDataset.dataset_dir=/nonexistent')
    assert needle in _error_line(result)


def test_missing_config_file():
    result = run_tool('tools/eval.py', '-c', 'configs/gcnet/no_such.yml')
    assert "-c configs/gcnet/no_such.yml: no such config file" in _error_line(result)


def test_missing_weights():
    result = run_tool('tools/eval.py', '-c', QUICKSTART_CONFIG, '-o', 'weights=/tmp/nope/x')
    assert "weights: /tmp/nope/x: no such file" in _error_line(result)


def test_missing_image(tmp_path):
    result = run_tool('tools/infer.py', '-c', QUICKSTART_CONFIG,
                      '--infer_img', str(tmp_path / 'missing.jpg'))
    assert f"--infer_img {tmp_path / 'missing.jpg'}: no such file" in _error_line(result)


def test_image_dir_without_images(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an image')
    result = run_tool('tools/infer.py', '-c', QUICKSTART_CONFIG, '--infer_dir', str(tmp_path))
    assert f"--infer_dir {tmp_path}: no images" in _error_line(result)


def test_resume_from_missing_checkpoint():
    result = run_tool('tools/train.py', '-c', QUICKSTART_CONFIG, '-r', '/tmp/nope/ckpt')
    assert "-r/--resume /tmp/nope/ckpt: no such checkpoint" in _error_line(result)


def test_image_type_ppdet_cannot_read(tmp_path):
    image = tmp_path / 'photo.webp'
    image.write_bytes(b'RIFF0000WEBP')
    result = run_tool('tools/infer.py', '-c', QUICKSTART_CONFIG, '--infer_img', str(image))
    assert f"--infer_img {image}: not a supported image type" in _error_line(result)


def test_missing_pretrain_weights(shapes_dataset, tmp_path):
    result = run_tool('tools/train.py', '-c', QUICKSTART_CONFIG, '-o',
                      f'TrainDataset.dataset_dir={shapes_dataset}',
                      f'save_dir={tmp_path / "output"}', 'pretrain_weights=/tmp/nope/backbone')
    assert "pretrain_weights: /tmp/nope/backbone: no such file" in _error_line(result)
