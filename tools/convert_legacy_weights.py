"""Convert legacy static-graph GCNet Mask R-CNN weights into a dygraph `.pdparams`.

    python tools/convert_legacy_weights.py SOURCE -c CONFIG -o OUT.pdparams

SOURCE: a folder of per-variable LoDTensor files (Paddle 1.x save_persistables), a tar/zip of
such a folder (e.g. the seed's mask_rcnn_r50_vd_fpn_gcb_add_r16_2x.tar), a single `fluid.save`
pickle (`*.pdparams`), or a manifest name / URL (downloaded and verified first).
CONFIG: the dygraph config whose model receives the weights (it decides the parameter set).
Every model parameter must be filled; unmapped legacy arrays are listed.
"""
import argparse
import os
import sys

import _path  # noqa: F401

from ppdet_gcnet.cli import ToolError, check_output_dir
from ppdet_gcnet.weights import WeightsError, find_entry
from ppdet_gcnet.weights.convert import convert_legacy_weights
from ppdet_gcnet.weights.download import DownloadError, download
from ppdet_gcnet.weights.manifest import LEGACY_STATIC
from ppdet_gcnet.weights.resolve import cache_root


def local_source(source):
    entry = find_entry(source)
    if entry is None:
        if source.startswith(('http://', 'https://')):
            raise WeightsError(f"{source}: URL not in the manifest; download it yourself")
        return source
    if entry.format != LEGACY_STATIC:
        raise WeightsError(f"{entry.name}: is already a dygraph .pdparams, nothing to convert")
    path = os.path.join(cache_root(), entry.name, entry.filename)
    return download(entry.url, path, entry.sha256, entry.md5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', help='legacy folder, archive, pickle, manifest name or URL')
    parser.add_argument('-c', '--config', required=True, help='dygraph config of the model')
    parser.add_argument('-o', '--output', required=True, help='output .pdparams path')
    args = parser.parse_args(argv)
    if not args.output.endswith('.pdparams'):
        parser.error(f"-o {args.output}: the output must end in .pdparams")
    try:
        check_output_dir(os.path.dirname(os.path.abspath(args.output)),
                         f'-o {args.output}: its folder')
        convert_legacy_weights(local_source(args.source), args.config, args.output)
    except (WeightsError, DownloadError, ValueError, OSError, ToolError) as error:
        # ValueError: ConversionError, UnsafeArchiveError, UnsafePickleError, LoDTensorFormatError
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
