"""tools/visualize_context.py from the command line: a real run through ppdet's test pipeline,
and one-line errors that name the bad path."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ppdet_gcnet.analysis.context_inputs import InputError, check_output_dir, collect_images

CONFIG = 'tests/configs/gc_r18_shapes.yml'  # a small GC model (ResNet18-vd, GC on c3-c5)


def _run_tool(repo_root, *args):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, 'tools/visualize_context.py', '-c', CONFIG, *args],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)


def test_cli_run_on_a_small_gc_config(repo_root, shapes_dataset, tmp_path):
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    result = _run_tool(repo_root, '-o', 'weights=null', '--infer_img', image,
                       '--output_dir', str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / 'val_00000'
    overlays = sorted(p for p in os.listdir(folder) if p.startswith('res'))
    # ResNet18 with GC on c3-c5: 2 + 2 + 2 blocks
    assert overlays == ['res3a.png', 'res3b.png', 'res4a.png', 'res4b.png', 'res5a.png',
                        'res5b.png']
    assert cv2.imread(str(folder / overlays[0])).shape == (128, 128, 3)
    assert cv2.imread(str(folder / 'summary.png')) is not None
    assert (folder / 'report.json').is_file()


def test_cli_errors_are_one_line_naming_the_value(repo_root, tmp_path):
    text_file = tmp_path / 'notes.txt'
    text_file.write_text('not an image')
    result = _run_tool(repo_root, '--infer_img', str(text_file))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: --infer_img') and 'notes.txt' in last
    assert 'Traceback' not in result.stderr

    image = tmp_path / 'ok.png'
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    result = _run_tool(repo_root, '-o', f'weights={tmp_path}/missing', '--infer_img', str(image),
                       '--output_dir', str(tmp_path / 'out'))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: weights') and 'missing' in last
    assert not (tmp_path / 'out').exists()   # a failed run leaves no output folder behind


@pytest.mark.parametrize('make, option, message', [
    (lambda d: None, 'img', 'does not exist'),
    (lambda d: None, 'dir', 'does not exist'),
    (lambda d: os.makedirs(d), 'img', 'is a directory'),
    (lambda d: open(d, 'w').close(), 'dir', 'is not a directory'),
    (lambda d: os.makedirs(d) or open(os.path.join(d, 'a.txt'), 'w').close(), 'dir',
     'contains no images'),
    (lambda d: open(d + '.txt', 'w').close(), 'img-txt', 'is not an image file'),
    (lambda d: open(d + '.jpg', 'wb').write(b'\xff\xd8 truncated'), 'img-jpg',
     'cannot be decoded'),
])
def test_bad_inputs_name_the_path(tmp_path, make, option, message):
    target = str(tmp_path / 'thing')
    make(target)
    if option.startswith('img-'):
        target += '.' + option.split('-')[1]
        option = 'img'
    kwargs = {'infer_img': target} if option == 'img' else {'infer_dir': target}
    with pytest.raises(InputError) as error:
        collect_images(**kwargs)
    assert message in str(error.value)
    assert repr(target) in str(error.value)
    assert f'--infer_{option}' in str(error.value)


def test_corrupt_image_inside_a_directory_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / 'good.png'), np.zeros((16, 16, 3), np.uint8))
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n')
    with pytest.raises(InputError, match='broken.png'):
        collect_images(infer_dir=str(tmp_path))


def test_directory_images_are_sorted_and_absolute(tmp_path):
    for name in ('b.png', 'a.jpg'):
        cv2.imwrite(str(tmp_path / name), np.zeros((16, 16, 3), np.uint8))
    (tmp_path / 'readme.txt').write_text('skip me')
    assert collect_images(infer_dir=str(tmp_path)) == [str(tmp_path / 'a.jpg'),
                                                       str(tmp_path / 'b.png')]


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / 'taken'
    target.write_text('a file')
    with pytest.raises(InputError, match=f"--output_dir: {str(target)!r} exists and is not"):
        check_output_dir(str(target))
