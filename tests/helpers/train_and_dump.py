"""Runs tools/train.py's main() and then saves this rank's parameters to DUMP_DIR/rank<N>.npz,
so a test can compare the parameters every data-parallel process ends with. Parameters only:
batch-norm running statistics (non-trainable) stay per process unless norm_type is sync_bn."""
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, ROOT)

import paddle  # noqa: E402
import train  # noqa: E402  (tools/train.py)

trainer = train.main(sys.argv[1:])
model = trainer.model._layers if hasattr(trainer.model, '_layers') else trainer.model
rank = paddle.distributed.get_rank()
np.savez(os.path.join(os.environ['DUMP_DIR'], f'rank{rank}.npz'),
         **{k: v.numpy() for k, v in model.named_parameters() if v.trainable})
