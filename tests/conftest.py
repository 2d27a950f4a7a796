"""Shared fixtures. Tests run on CPU; the repository root is importable."""
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def shapes_dataset(tmp_path_factory):
    """A tiny generated COCO-format instance dataset: 4 train / 2 val images of 128x128."""
    from ppdet_gcnet.data import make_shapes_dataset
    root = tmp_path_factory.mktemp('data') / 'shapes'
    return str(make_shapes_dataset(str(root), num_train=4, num_val=2, width=128, height=128,
                                   max_objects=3, seed=1))
