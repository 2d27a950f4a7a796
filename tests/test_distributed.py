"""Two data-parallel CPU processes through paddle.distributed.launch end with identical
parameters (gradients are all-reduced every step), and they did train."""
import os

import numpy as np

from tool_runner import run_tool, tiny_config


def test_two_process_training_keeps_replicas_identical(tmp_path, shapes_dataset):
    config = tiny_config(str(tmp_path), shapes_dataset)
    dumps = tmp_path / 'dumps'
    dumps.mkdir()
    result = run_tool('-m', 'paddle.distributed.launch', '--nproc_per_node', '2',
                      '--log_dir', str(tmp_path / 'launch_logs'),
                      os.path.join(os.path.dirname(__file__), 'helpers', 'train_and_dump.py'),
                      '-c', config, '-o', 'epoch=1', 'TrainReader.batch_size=1',
                      env={'DUMP_DIR': str(dumps)}, timeout=900)
    logs = ''.join(p.read_text() for p in (tmp_path / 'launch_logs').glob('workerlog.*'))
    assert result.returncode == 0, (result.stderr + logs)[-4000:]
    rank0, rank1 = np.load(dumps / 'rank0.npz'), np.load(dumps / 'rank1.npz')
    assert sorted(rank0.files) == sorted(rank1.files) and len(rank0.files) > 100
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    # each rank saw a different half of the data, so identical results come from the
    # all-reduce, not from identical inputs; and training moved the parameters
    assert 'Epoch: [0]' in logs
    initial = np.load(dumps / 'rank0.npz')['backbone.res3.res3a.gc_block.channel_add_conv.3.weight']
    assert np.abs(initial).max() > 0  # zero-initialised, so non-zero means it was updated
