"""Result visualisation (upstream develop): the label font is cached under a literal `~` folder.

Defect: upstream `ppdet.utils.visualizer.draw_bbox` (develop, 2024) fetches its label font with
`get_path(font_url, "~/.cache/paddle/")`, and `get_path` does not expand `~`: the font is
looked up, and downloaded, under a folder literally named `~` in the current working
directory. Every new working directory downloads it again, and offline every drawing fails.
(PaddleDetection 2.6's `draw_bbox` uses PIL's default font and has no such lookup.)

Restores: the cache the path names, the user's ~/.cache/paddle, where ppdet's own weights and
dataset caches live (`ppdet.utils.download`: `osp.expanduser("~/.cache/paddle/...")`).

Fix: `visualizer.get_path` (the name `draw_bbox` looks up in its module) is replaced by
`get_path` below, which expands `~` in the folder and hands over to the original.
"""
import inspect
import os
import re

from ._patching import original, replace

NAME = 'visualizer_font_cache'


def _visualizer_module():
    from ppdet.utils import visualizer
    return visualizer


def get_path(url, root_dir, *args, **kwargs):
    """ppdet's get_path with `~` in root_dir expanded to the user's home."""
    return original(get_path)(url, os.path.expanduser(root_dir), *args, **kwargs)


def probe():
    """Source check (a run would download): True if `draw_bbox` passes a `~` folder to a
    `get_path` that does not expand it."""
    visualizer = _visualizer_module()
    fetch = getattr(visualizer, 'get_path', None)
    if fetch is None:
        return False
    draws_from_home = re.search(r"get_path\([^)]*['\"]~", inspect.getsource(visualizer.draw_bbox))
    return bool(draws_from_home) and 'expanduser' not in inspect.getsource(fetch)


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces (none where draw_bbox fetches no
    font, as in 2.6)."""
    visualizer = _visualizer_module()
    return [(visualizer, 'get_path')] if hasattr(visualizer, 'get_path') else []


def apply():
    return any(replace(owner, name, get_path, NAME) for owner, name in replaced_attributes())
