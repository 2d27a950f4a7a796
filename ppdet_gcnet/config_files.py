"""Where the bundled configs live, and how a `-c` value names one.

In a checkout they are `configs/` beside the package; an installed package carries the same tree
as `ppdet_gcnet/configs/` (package data). `_BASE_` paths inside them are relative to each file,
so a bundled config resolves its bases inside the bundle.
"""
import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CANDIDATE_ROOTS = (os.path.join(_PACKAGE_DIR, 'configs'),                   # installed
                    os.path.join(os.path.dirname(_PACKAGE_DIR), 'configs'))  # checkout


def configs_root():
    """The bundled configs folder, or None if this copy of the package has none."""
    for root in _CANDIDATE_ROOTS:
        if os.path.isdir(root):
            return root
    return None


def bundled_config(name):
    """Path of the bundled config `name` (`gcnet/x.yml`, or `configs/gcnet/x.yml` as the README
    writes it from the checkout root), or None. Names stay inside the configs folder."""
    root = configs_root()
    if root is None or not name or os.path.isabs(name):
        return None
    parts = os.path.normpath(name).split(os.sep)
    if parts[0] == 'configs':
        parts = parts[1:]
    if not parts or '..' in parts:
        return None
    path = os.path.join(root, *parts)
    return path if os.path.isfile(path) else None


def find_config(value):
    """A `-c` value -> config file: an existing path as given, else a bundled config name."""
    if os.path.isfile(value):
        return value
    return bundled_config(value)


def bundled_model_configs():
    """Names of the bundled model configs: those built from `_BASE_` parts, i.e. not the parts."""
    root = configs_root()
    if root is None:
        return []
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != '_base_')
        for file_name in sorted(f for f in files if f.endswith('.yml')):
            path = os.path.join(folder, file_name)
            with open(path) as f:
                if '_BASE_' in f.read():
                    names.append(os.path.relpath(path, root).replace(os.sep, '/'))
    return names
