"""Fetch model-zoo weights into the cache (verified; legacy archives converted), print the path.

    python tools/download_weights.py --list
    python tools/download_weights.py mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco
    python tools/download_weights.py https://paddlemodels.bj.bcebos.com/object_detection/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x.tar
    python tools/download_weights.py ResNet50_vd_pretrained --print-sha256
    python tools/download_weights.py https://host/other.tar --sha256 <hex>   # not in the manifest

Cache: $PPDET_GCNET_CACHE, default ~/.cache/ppdet_gcnet/weights. An interrupted download
resumes when the command is run again.
"""
import argparse
import os
import sys

import _path  # noqa: F401

from ppdet_gcnet.cli import ToolError, check_output_dir
from ppdet_gcnet.weights import MODELS, WeightsError, cache_root, fetch_entry, find_entry
from ppdet_gcnet.weights.download import DownloadError, download, file_digest
from ppdet_gcnet.weights.manifest import LEGACY_STATIC


def list_models():
    for entry in MODELS:
        ap = f"box {entry.box_ap} / mask {entry.mask_ap}" if entry.box_ap else '-'
        print(f"{entry.name}\n  format: {entry.format}\n  config: {entry.config or '-'}\n"
              f"  AP (legacy): {ap}\n  sha256: {entry.sha256 or 'not pinned'}\n  url: {entry.url}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('name', nargs='?', help='manifest name or URL')
    parser.add_argument('--list', action='store_true', help='list the manifest and exit')
    parser.add_argument('--cache-dir', help='cache folder (default: $PPDET_GCNET_CACHE or '
                                            '~/.cache/ppdet_gcnet/weights)')
    parser.add_argument('--raw', action='store_true',
                        help='download only: do not convert a legacy archive')
    parser.add_argument('--sha256', help='expected sha256 (required for URLs outside the manifest '
                                         'unless --md5 is given)')
    parser.add_argument('--md5', help='expected md5')
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds per network wait')
    parser.add_argument('--print-sha256', action='store_true',
                        help='print the sha256 of the downloaded file (to pin it in the manifest)')
    args = parser.parse_args(argv)
    if args.list:
        list_models()
        return 0
    if not args.name:
        parser.error('give a manifest name or URL (or --list)')
    if args.cache_dir:
        os.environ['PPDET_GCNET_CACHE'] = os.path.abspath(args.cache_dir)
    try:
        check_output_dir(cache_root(), '--cache-dir' if args.cache_dir else 'weights cache')
        entry = find_entry(args.name)
        if entry is None:
            if not args.name.startswith(('http://', 'https://')):
                raise WeightsError(f"{args.name!r} is neither a manifest name nor a URL "
                                   f"(see --list)")
            if not (args.sha256 or args.md5):
                raise WeightsError(f"{args.name}: not in the manifest; pin it with --sha256 "
                                   f"(or --md5) to download it")
            dest = os.path.join(cache_root(), 'urls', args.name.rstrip('/').rsplit('/', 1)[-1])
            path = download(args.name, dest, args.sha256, args.md5, timeout=args.timeout)
        elif args.raw or entry.format != LEGACY_STATIC:
            if args.sha256 or args.md5:
                raise WeightsError("--sha256/--md5 are for URLs outside the manifest; "
                                   "manifest entries carry their own pins")
            if entry.format == LEGACY_STATIC:
                path = os.path.join(cache_root(), entry.name, entry.filename)
                download(entry.url, path, entry.sha256, entry.md5, timeout=args.timeout)
            else:
                path = fetch_entry(entry, timeout=args.timeout)
        else:
            path = fetch_entry(entry, timeout=args.timeout)
            if args.print_sha256:
                raw = os.path.join(cache_root(), entry.name, entry.filename)
                print(f"sha256 {file_digest(raw, 'sha256')}  {raw}", file=sys.stderr)
    except (WeightsError, DownloadError, ToolError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.print_sha256:
        print(f"sha256 {file_digest(path, 'sha256')}  {path}", file=sys.stderr)
    print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
