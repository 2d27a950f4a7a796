"""Convert an mmdetection checkpoint into a `.pdparams` for a configs/gcnet mmdetection row.

    python tools/convert_mmdet_weights.py SRC.pth -c CONFIG -o OUT.pdparams

SRC: a `.pth` file (read without torch and without running code from it) or a manifest name /
URL of a published mmdetection GCNet checkpoint (downloaded and verified first).
CONFIG: the row's config (it decides the parameter set). Every model parameter must be filled
and every checkpoint tensor used (BN step counters excepted, and reported).
"""
import sys

import _path  # noqa: F401

from ppdet_gcnet.weights.convert_tool import run_conversion_tool
from ppdet_gcnet.weights.manifest import MMDET_PTH
from ppdet_gcnet.weights.mmdet_convert import convert_mmdet_weights


def main(argv=None):
    return run_conversion_tool(__doc__, MMDET_PTH, convert_mmdet_weights,
                               '.pth file, manifest name or URL', 'config of the model', argv)


if __name__ == '__main__':
    sys.exit(main())
