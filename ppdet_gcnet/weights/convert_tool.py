"""The conversion tools' shared front end (tools/convert_legacy_weights.py,
tools/convert_mmdet_weights.py): `SOURCE -c CONFIG -o OUT.pdparams`, the source being a local
file or folder, or a manifest name / URL (downloaded and verified into the weights cache
first); the output folder checked writable before any work; every failure one `error:` line
and exit status 2."""
import argparse
import os
import sys

from .download import DownloadError, download
from .manifest import LEGACY_STATIC, MMDET_PTH, PDPARAMS, find_entry
from .resolve import WeightsError, cache_root

# what to do with a manifest entry of each format
_WHAT_TO_DO = {
    PDPARAMS: "a dygraph .pdparams already, nothing to convert",
    LEGACY_STATIC: "legacy Paddle weights: convert them with tools/convert_legacy_weights.py",
    MMDET_PTH: "an mmdetection checkpoint: convert it with tools/convert_mmdet_weights.py",
}


def local_source(source, fmt):
    """A manifest name / URL of format `fmt` -> its verified download in the cache; anything
    else not a URL -> itself (a local path)."""
    entry = find_entry(source)
    if entry is None:
        if source.startswith(('http://', 'https://')):
            raise WeightsError(f"{source}: URL not in the manifest; download it yourself")
        return source
    if entry.format != fmt:
        raise WeightsError(f"{entry.name}: {_WHAT_TO_DO.get(entry.format, entry.format)}")
    path = os.path.join(cache_root(), entry.name, entry.filename)
    return download(entry.url, path, entry.sha256, entry.md5)


def run_conversion_tool(doc, fmt, convert, source_help, config_help, argv=None):
    """Parse `SOURCE -c CONFIG -o OUT.pdparams` and run `convert(local source, config, out)`.
    Returns the exit status."""
    from ..cli import ToolError, check_output_dir
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', help=source_help)
    parser.add_argument('-c', '--config', required=True, help=config_help)
    parser.add_argument('-o', '--output', required=True, help='output .pdparams path')
    args = parser.parse_args(argv)
    if not args.output.endswith('.pdparams'):
        parser.error(f"-o {args.output}: the output must end in .pdparams")
    try:
        check_output_dir(os.path.dirname(os.path.abspath(args.output)),
                         f'-o {args.output}: its folder')
        convert(local_source(args.source, fmt), args.config, args.output)
    except (WeightsError, DownloadError, ValueError, OSError, ToolError) as error:
        # ValueError: the converters' format errors (ConversionError, CheckpointError,
        # UnsafeArchiveError, UnsafePickleError, LoDTensorFormatError, ModelParamsError)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
