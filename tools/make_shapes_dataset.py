"""Write the bundled shapes dataset (COCO format, instance masks) used by the quickstart, e.g.

    python tools/make_shapes_dataset.py --output_dir dataset/shapes
"""
import argparse

import _path  # noqa: F401


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="dataset/shapes")
    parser.add_argument("--num_train", type=int, default=64)
    parser.add_argument("--num_val", type=int, default=32)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from ppdet_gcnet.data.shapes import make_shapes_dataset
    try:
        root = make_shapes_dataset(args.output_dir, num_train=args.num_train,
                                   num_val=args.num_val, width=args.width,
                                   height=args.height, seed=args.seed)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"shapes dataset: {args.num_train} train / {args.num_val} val images in {root}")


if __name__ == '__main__':
    main()
