"""Train a detector from a PaddleDetection config, e.g.

    python tools/train.py -c configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml --eval
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c CONFIG
    python tools/train.py -c CONFIG -r auto   # continue from the newest complete checkpoint
"""
import _path  # noqa: F401

from ppdet_gcnet.cli import (build_parser, check_output_dir, load_tool_config, parse_args,
                             require_weights, resolve_config_weights, run_tool)
from ppdet_gcnet.dataset_check import check_datasets


def make_parser():
    parser = build_parser(__doc__)
    parser.add_argument("--eval", action='store_true', default=False,
                        help="evaluate on EvalDataset after each snapshot epoch")
    parser.add_argument("-r", "--resume", default=None,
                        help="checkpoint to resume from (path without .pdparams), or 'auto': "
                             "the newest complete checkpoint in the run's save_dir, if any")
    parser.add_argument("--use_vdl", action='store_true', default=False,
                        help="log scalars to VisualDL")
    parser.add_argument("--vdl_log_dir", default="vdl_log_dir/scalar",
                        help="VisualDL log directory")
    parser.add_argument("--amp", action='store_true', default=False,
                        help="automatic mixed precision (GPU)")
    parser.add_argument("--save_prediction_only", action='store_true', default=False,
                        help="with --eval: save predictions without computing the metric")
    parser.add_argument("--skip_nonfinite", action='store_true', default=False,
                        help="skip a step whose loss or gradients are NaN/Inf (default: stop "
                             "with one line naming the iteration and the loss terms)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed, for reproducible runs")
    return parser


def main(argv=None):
    args = parse_args(make_parser(), argv)
    cfg = load_tool_config(args)

    import paddle
    from ppdet.engine import Trainer, init_parallel_env, set_random_seed
    from ppdet.utils.logger import setup_logger
    from ppdet_gcnet import nonfinite, resume
    from ppdet_gcnet.pretrained import load_pretrained_weights
    from ppdet_gcnet.weights.state_file import check_weights_fit

    if paddle.distributed.get_world_size() > 1:
        init_parallel_env()
    if args.seed is not None:
        set_random_seed(args.seed)
    checkpoint = None
    if args.resume:
        checkpoint = resume.choose(args.resume, resume.run_save_dir(cfg),
                                   setup_logger('train').info)
    check_datasets(cfg, 'TrainDataset', *(['EvalDataset'] if args.eval else []))
    check_output_dir(cfg.get('save_dir', 'output'), 'save_dir')
    resolve_config_weights(cfg, keys=('pretrain_weights', ))
    if cfg.get('pretrain_weights') and not checkpoint:
        require_weights(cfg, 'pretrain_weights')

    trainer = Trainer(cfg, mode='train')
    if checkpoint:
        check_weights_fit(trainer.model, checkpoint, '-r/--resume')
        trainer.resume_weights(checkpoint)
    elif cfg.get('pretrain_weights'):
        load_pretrained_weights(trainer.model, cfg.pretrain_weights)
    resume.restore_run_state(trainer, checkpoint, args.seed)
    nonfinite.guard(trainer, resume.run_save_dir(cfg), skip=args.skip_nonfinite,
                    log=setup_logger('train').warning)
    trainer.train(args.eval)
    return trainer


if __name__ == '__main__':
    run_tool(main)
