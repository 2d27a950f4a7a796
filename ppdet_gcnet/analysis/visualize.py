"""One visualisation run: forward each batch through the backbone under `ContextCapture`, then
write, per image, into `output_dir/<image name>/`:
  <block>.png   heat-map overlay of the block's attention map, at the image's size ('att' only)
  summary.png   every block on one sheet: stages as rows, blocks as columns
  report.json   the per-block numbers of `context_report`
  report.png    the same numbers as bar charts
"""
import json
import os
import re

import numpy as np
import paddle

from .context_capture import ContextCapture
from .context_inputs import decode_rgb
from .context_plots import (atomic_write, attention_on_image, heat_overlay, report_chart,
                            summary_sheet, write_png_rgb)
from .context_report import image_report


def _safe_name(name):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name)


def _image_folder_name(path, used):
    """Folder name for an image: its stem, or its whole file name if another image took the stem."""
    stem = _safe_name(os.path.splitext(os.path.basename(path))[0])
    name = stem if stem not in used else _safe_name(os.path.basename(path))
    while name in used:
        name += '_'
    used.add(name)
    return name


def _fusion_text(entry):
    """Fusion magnitudes of a report entry as one short line, e.g. 'add 0.031  mul 0.120'."""
    parts = [f"{kind} {entry[kind + '_magnitude']:.3f}" for kind in ('add', 'mul')
             if kind + '_magnitude' in entry]
    return '  '.join(parts)


def _write_json(path, data):
    def write(temp):
        with open(temp, 'w') as f:
            json.dump(data, f, indent=2)
            f.write('\n')
    return atomic_write(path, write)


def _to_numpy(value):
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def write_image_outputs(records, index, image_path, padded_hw, resized_hw, folder, log=print):
    """Write the overlays, sheet, report and chart of image `index` of the captured batch."""
    image_rgb = decode_rgb(image_path)
    if image_rgb is None:
        raise ValueError(f"{image_path!r} could not be decoded for drawing")
    image_hw = image_rgb.shape[:2]
    valid_fraction = (resized_hw[0] / padded_hw[0], resized_hw[1] / padded_hw[1])
    report = image_report(records, image_path, index)
    written, rows, uniform_blocks = [], [], []
    for record, entry in zip(records, report['blocks']):
        stage_label = record.stage_name.split('.')[-1] or record.stage_name
        if not rows or rows[-1][0] != stage_label:
            rows.append((stage_label, []))
        if record.attention is None:
            uniform_blocks.append(record.short_name)
            rows[-1][1].append((f"{record.short_name}\n{_fusion_text(entry)}", None))
            continue
        heat = attention_on_image(record.attention[index], valid_fraction, image_hw)
        overlay = heat_overlay(image_rgb, heat, label=record.short_name)
        written.append(write_png_rgb(
            os.path.join(folder, _safe_name(record.short_name) + '.png'), overlay))
        title = (f"{record.short_name}\nentropy {entry['entropy_ratio']:.2f}  "
                 f"top1% {entry['top1pct_share']:.2f}\n{_fusion_text(entry)}")
        rows[-1][1].append((title, overlay))
    if uniform_blocks:
        log(f"{os.path.basename(image_path)}: {len(uniform_blocks)} block(s) use avg pooling "
            f"({', '.join(uniform_blocks)}): their attention is uniform by construction, "
            f"no heat map drawn")
    name = os.path.basename(image_path)
    written.append(summary_sheet(os.path.join(folder, 'summary.png'),
                                 f"GC attention maps: {name}\ncolour: attention / block maximum "
                                 f"(blue 0, red max); entropy 1 = uniform", rows, image_rgb))
    written.append(_write_json(os.path.join(folder, 'report.json'), report))
    written.append(report_chart(os.path.join(folder, 'report.png'),
                                f"GC blocks: {name}", report['blocks']))
    return written


def visualize(model, loader, imid2path, output_dir, log=print):
    """Run every batch of `loader` and write each image's outputs; returns {image: [files]}.

    Only the backbone runs (`model.backbone` if the model has one): GC blocks live there, and
    their maps do not depend on the detector's heads.
    """
    backbone = getattr(model, 'backbone', None)
    forward = model if backbone is None else backbone
    model.eval()
    outputs, used_names = {}, set()
    with ContextCapture(model) as capture, paddle.no_grad():
        for batch in loader:
            forward({'image': batch['image']})
            padded_hw = tuple(batch['image'].shape[2:])
            im_ids = _to_numpy(batch['im_id']).reshape(-1)
            im_shapes = _to_numpy(batch['im_shape']).reshape(-1, 2)
            for index, im_id in enumerate(im_ids):
                path = imid2path[int(im_id)]
                folder = os.path.join(output_dir, _image_folder_name(path, used_names))
                outputs[path] = write_image_outputs(capture.records, index, path, padded_hw,
                                                    tuple(im_shapes[index]), folder, log)
                log(f"{os.path.basename(path)}: wrote {len(outputs[path])} files to {folder}")
    return outputs
