"""Convert legacy static-graph GCNet Mask R-CNN weights into a dygraph `.pdparams`.

    python tools/convert_legacy_weights.py SOURCE -c CONFIG -o OUT.pdparams

SOURCE: a folder of per-variable LoDTensor files (Paddle 1.x save_persistables), a tar/zip of
such a folder (e.g. the seed's mask_rcnn_r50_vd_fpn_gcb_add_r16_2x.tar), a single `fluid.save`
pickle (`*.pdparams`), or a manifest name / URL (downloaded and verified first).
CONFIG: the dygraph config whose model receives the weights (it decides the parameter set).
Every model parameter must be filled; unmapped legacy arrays are listed.
"""
import sys

import _path  # noqa: F401

from ppdet_gcnet.weights.convert import convert_legacy_weights
from ppdet_gcnet.weights.convert_tool import run_conversion_tool
from ppdet_gcnet.weights.manifest import LEGACY_STATIC


def main(argv=None):
    return run_conversion_tool(__doc__, LEGACY_STATIC, convert_legacy_weights,
                               'legacy folder, archive, pickle, manifest name or URL',
                               'dygraph config of the model', argv)


if __name__ == '__main__':
    sys.exit(main())
