"""Convert an mmdetection checkpoint into a `.pdparams` for a configs/gcnet mmdetection row.

    python tools/convert_mmdet_weights.py SRC.pth -c CONFIG -o OUT.pdparams

SRC: a `.pth` file (read without torch and without running code from it) or a manifest name /
URL of a published mmdetection GCNet checkpoint (downloaded and verified first).
CONFIG: the row's config (it decides the parameter set). Every model parameter must be filled
and every checkpoint tensor used (BN step counters and the first cascade stages' mask heads
excepted, and reported).
"""
import argparse
import os
import sys

import _path  # noqa: F401

from ppdet_gcnet.weights import WeightsError, find_entry
from ppdet_gcnet.weights.download import DownloadError, download
from ppdet_gcnet.weights.manifest import MMDET_PTH
from ppdet_gcnet.weights.mmdet_convert import convert_mmdet_weights
from ppdet_gcnet.weights.resolve import cache_root


def local_source(source):
    entry = find_entry(source)
    if entry is None:
        if source.startswith(('http://', 'https://')):
            raise WeightsError(f"{source}: URL not in the manifest; download it yourself")
        return source
    if entry.format != MMDET_PTH:
        raise WeightsError(f"{entry.name}: not an mmdetection checkpoint (use "
                           f"tools/convert_legacy_weights.py for legacy Paddle weights)")
    path = os.path.join(cache_root(), entry.name, entry.filename)
    return download(entry.url, path, entry.sha256, entry.md5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', help='.pth file, manifest name or URL')
    parser.add_argument('-c', '--config', required=True, help='config of the model')
    parser.add_argument('-o', '--output', required=True, help='output .pdparams path')
    args = parser.parse_args(argv)
    if not args.output.endswith('.pdparams'):
        parser.error(f"-o {args.output}: the output must end in .pdparams")
    try:
        convert_mmdet_weights(local_source(args.source), args.config, args.output)
    except (WeightsError, DownloadError, ValueError, OSError) as error:
        # ValueError: ConversionError, CheckpointError, ModelParamsError
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
