"""`weights` / `pretrain_weights` values -> local files: manifest names and URLs are fetched,
verified, converted (legacy archives) and cached; local paths pass through unchanged."""
import os
import sys

from .download import DownloadError, Unreachable, download, file_lock
from .manifest import LEGACY_STATIC, MMDET_PTH, PDPARAMS, find_entry

CACHE_ENV = 'PPDET_GCNET_CACHE'
DEFAULT_CACHE = os.path.join('~', '.cache', 'ppdet_gcnet', 'weights')
# ppdet's own shorthand for its bucket (ppdet.utils.download).
_PPDET_SCHEME = ('ppdet://', 'https://paddledet.bj.bcebos.com/')
_URL_PREFIXES = ('http://', 'https://', 'ppdet://')
_ARCHIVE_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.zip')


class WeightsError(RuntimeError):
    """A weights value that cannot become a usable local file; one line, names the value."""


def cache_root():
    return os.path.abspath(os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE))


def _log(message):
    print(message, file=sys.stderr)


def _checked_pickle(path):
    """Refuse a downloaded `.pdparams` that would import anything beyond numpy arrays; the
    check runs once per file version (marker holds size and mtime)."""
    from .legacy_pickle import UnsafePickleError, load_array_pickle
    stat = os.stat(path)
    marker, stamp = path + '.checked', f"{stat.st_size} {stat.st_mtime_ns}"
    try:
        with open(marker) as handle:
            if handle.read().strip() == stamp:
                return path
    except OSError:
        pass
    try:
        load_array_pickle(path)
    except UnsafePickleError as error:
        raise WeightsError(str(error)) from None
    with open(marker, 'w') as handle:
        handle.write(stamp)
    return path


def fetch_entry(entry, root=None, progress=True, timeout=60.0):
    """Manifest entry -> verified local `.pdparams` path (downloaded/converted on first use)."""
    folder = os.path.join(root or cache_root(), entry.name)
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(folder, entry.filename)
    try:
        if entry.format == PDPARAMS:
            download(entry.url, raw, entry.sha256, entry.md5, timeout=timeout,
                     progress=progress, log=_log)
            return _checked_pickle(raw)
        if entry.format not in (LEGACY_STATIC, MMDET_PTH):
            raise WeightsError(f"{entry.name}: unknown manifest format {entry.format!r}")
        converted = os.path.join(folder, entry.name + '.pdparams')
        with file_lock(converted + '.lock'):
            if os.path.isfile(converted):
                return converted
            download(entry.url, raw, entry.sha256, entry.md5, timeout=timeout,
                     progress=progress, log=_log)
            from ..config_files import bundled_config
            config = bundled_config(entry.config)  # checkout or installed package alike
            if entry.format == MMDET_PTH:
                from .mmdet_convert import check_published_hash, convert_mmdet_weights
                check_published_hash(raw)
                _log(f"[weights] converting mmdetection {raw} for {entry.config}")
                convert_mmdet_weights(raw, config, converted, log=_log)
                return converted
            _log(f"[weights] converting legacy {raw} for {entry.config}")
            from .convert import convert_legacy_weights
            convert_legacy_weights(raw, config, converted, log=_log)
            return converted
    except WeightsError:
        raise
    except Unreachable as error:
        raise WeightsError(f"{entry.name}: {error}: no network? Run `python "
                           f"tools/download_weights.py {entry.name}` where there is one and "
                           f"pass the file it prints as a local path") from None
    except (DownloadError, OSError, ValueError) as error:
        raise WeightsError(f"{entry.name}: {error}") from None


def _local_source_digest(source, config):
    """Identifies a local legacy folder/archive version (paths, sizes, mtimes) and the config."""
    import hashlib
    digest = hashlib.sha256(f"{os.path.abspath(source)}\n{os.path.abspath(config)}".encode())
    files = ([os.path.join(d, f) for d, _, names in os.walk(source) for f in names]
             if os.path.isdir(source) else [source])
    for path in sorted(files):
        stat = os.stat(path)
        digest.update(f"\n{os.path.relpath(path, source)} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def convert_local_legacy(source, config):
    """A local legacy folder or archive -> converted `.pdparams` in the cache (once per
    version of the source and config)."""
    from .convert import ConversionError, convert_legacy_weights
    name = os.path.basename(os.path.normpath(source)).split('.')[0] or 'legacy'
    folder = os.path.join(cache_root(), 'local', f"{name}-{_local_source_digest(source, config)}")
    os.makedirs(folder, exist_ok=True)
    converted = os.path.join(folder, name + '.pdparams')
    with file_lock(converted + '.lock'):
        if not os.path.isfile(converted):
            _log(f"[weights] converting legacy {source} for {config}")
            try:
                convert_legacy_weights(source, config, converted, log=_log)
            except (ConversionError, OSError, ValueError) as error:
                raise WeightsError(f"weights {source}: {error}") from None
    return converted


def resolve_weights(value, config=None):
    """Local path (with or without `.pdparams`, existing or not yet) -> unchanged (`~`
    expanded); a local legacy folder or archive, given the `config` it belongs to -> converted
    and cached `.pdparams`; manifest name or known URL -> cached, verified `.pdparams` path
    (the suffix included, which ppdet's load_weight / load_pretrain_weight strip); an unknown
    URL -> WeightsError."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return value
    local = os.path.expanduser(text)
    if not text.startswith(_URL_PREFIXES) and (
            os.path.exists(local) or os.path.exists(local + '.pdparams')):
        is_archive = os.path.isfile(local) and local.endswith(_ARCHIVE_SUFFIXES)
        if config and (is_archive or os.path.isdir(local)):
            return convert_local_legacy(local, config)
        if is_archive:
            raise WeightsError(
                f"weights {text}: a local archive; convert it first: python "
                f"tools/convert_legacy_weights.py {text} -c <config> -o <out>.pdparams")
        return local
    lookup = text.replace(*_PPDET_SCHEME) if text.startswith('ppdet://') else text
    entry = find_entry(lookup)
    if entry is not None:
        return fetch_entry(entry)
    if text.startswith(_URL_PREFIXES):
        raise WeightsError(
            f"weights {text}: URL not in the weights manifest; .pdparams files are pickles, so "
            f"only pinned URLs are fetched (download it yourself and pass the local path, or "
            f"add it to ppdet_gcnet/weights/manifest.py)")
    return local
