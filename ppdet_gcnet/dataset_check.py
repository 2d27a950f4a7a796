"""Checking a config's datasets before ppdet builds loaders from them, so that a wrong path or a
damaged annotation file ends in one line naming it rather than a traceback from deep inside
ppdet or pycocotools (or, for missing images, ppdet's silent "will be ignored").

What is checked, per dataset section (TrainDataset, EvalDataset, TestDataset):
- `dataset_dir` is a directory, `image_dir` a directory inside it, `anno_path` a file;
- a COCO annotation file is valid JSON with an `images` list;
- every image it lists exists, and starts like a JPEG, PNG or BMP file (ppdet decodes those;
  reading 8 bytes per image keeps this cheap even for COCO's 118k training images). An image
  that is there but cannot be decoded is an error, not a skip: a training set that silently
  shrinks is worse than one that stops with the file named.
"""
import json
import os

from .cli import ToolError

SHOWN = 3
_IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'BM')


def _where(section, field, value):
    return f"{section}.{field} {value}"


def _require_dir(section, field, value, path):
    if not os.path.isdir(path):
        what = 'is a file, not a directory' if os.path.exists(path) else 'no such directory'
        raise ToolError(f"{_where(section, field, value)}: {path}: {what}")


def _first(names):
    shown = ', '.join(names[:SHOWN])
    return shown + (f" (and {len(names) - SHOWN} more)" if len(names) > SHOWN else '')


def _looks_like_image(path):
    try:
        with open(path, 'rb') as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(_IMAGE_MAGIC)


def _check_coco_annotations(section, anno_file, image_root):
    try:
        with open(anno_file) as f:
            coco = json.load(f)
    except UnicodeDecodeError:
        raise ToolError(f"{section}.anno_path {anno_file}: not a JSON text file")
    except json.JSONDecodeError as error:
        raise ToolError(f"{section}.anno_path {anno_file}: malformed JSON ({error.msg} at line "
                        f"{error.lineno}, column {error.colno})")
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
        raise ToolError(f"{section}.anno_path {anno_file}: not a COCO annotation file "
                        f"(no 'images' list)")
    names = []
    for entry in coco['images']:
        if not isinstance(entry, dict) or not isinstance(entry.get('file_name'), str):
            raise ToolError(f"{section}.anno_path {anno_file}: an 'images' entry without a "
                            f"file_name: {str(entry)[:80]}")
        names.append(entry['file_name'])
    paths = [os.path.join(image_root, name) for name in names]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ToolError(f"{section}.anno_path {anno_file}: {len(missing)} of {len(paths)} "
                        f"listed images not found: {_first(missing)}")
    undecodable = [p for p in paths if not _looks_like_image(p)]
    if undecodable:
        raise ToolError(f"{section}: {len(undecodable)} of {len(paths)} images are not JPEG, "
                        f"PNG or BMP files (damaged?): {_first(undecodable)}")


def check_dataset(cfg, section):
    """Raise ToolError for the first problem in dataset `section` of cfg (see module doc)."""
    dataset = cfg.get(section)
    if dataset is None:
        raise ToolError(f"{section}: not in the config")
    dataset_dir = getattr(dataset, 'dataset_dir', None) or ''
    image_dir = getattr(dataset, 'image_dir', None) or ''
    anno_path = getattr(dataset, 'anno_path', None)
    # ImageFolder (inference) reads only class names from its annotation file, if there is one
    is_image_folder = type(dataset).__name__ == 'ImageFolder'
    if dataset_dir and not is_image_folder:
        _require_dir(section, 'dataset_dir', dataset_dir, dataset_dir)
    image_root = os.path.join(dataset_dir, image_dir)
    if image_dir and not is_image_folder:
        _require_dir(section, 'image_dir', image_dir, image_root)
    if anno_path:
        anno_file = os.path.join(dataset_dir, anno_path)
        if is_image_folder and not os.path.isfile(anno_file):
            return  # inference then labels with COCO's categories, as ppdet does
        if not os.path.isfile(anno_file):
            raise ToolError(f"{_where(section, 'anno_path', anno_path)}: {anno_file}: no such "
                            f"file")
        if anno_file.endswith('.json'):
            if is_image_folder:  # inference reads only the class names
                _check_json_only(section, anno_file)
            else:
                _check_coco_annotations(section, anno_file, image_root)


def _check_json_only(section, anno_file):
    try:
        with open(anno_file) as f:
            json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ToolError(f"{section}.anno_path {anno_file}: malformed JSON ({error})")


def check_datasets(cfg, *sections):
    for section in sections:
        check_dataset(cfg, section)
