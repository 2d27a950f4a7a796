"""Extracting downloaded archives (tar, tar.gz, zip) without trusting their member names.

Every member is checked before anything is written: no absolute paths, no `..`, no links (a
weights archive has no use for them and a link is the usual way out of the target folder), no
device files or FIFOs. Extraction goes to a temporary sibling folder that is renamed into
place only when complete, so a failed or refused archive leaves nothing behind.
"""
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile

_COPY_CHUNK = 1 << 20
# The seed's archives unpack to ~180 MB; a bound stops a decompression bomb filling the disk.
DEFAULT_MAX_TOTAL_BYTES = 16 << 30


class UnsafeArchiveError(ValueError):
    """A member that could write outside the target folder or is not a plain file/folder."""


def _checked_relpath(name, archive):
    """Member name -> safe relative path with '/' separators, or an error naming it."""
    if '\x00' in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL byte in its name")
    normalized = name.replace('\\', '/')
    if normalized.startswith('/') or (len(normalized) > 1 and normalized[1] == ':'):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in normalized.split('/') if p not in ('', '.')]
    if '..' in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'")
    return '/'.join(parts)


def _target_path(root, relpath, archive, name):
    path = os.path.join(root, *relpath.split('/'))
    # Belt and braces: the real parent must still be inside the (real) root.
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(os.path.dirname(path))
    if os.path.commonpath([real_root, real_parent]) != real_root:
        raise UnsafeArchiveError(f"{archive}: member {name!r} resolves outside the target")
    return path


def _plan_tar(tar, archive):
    plan = []
    for member in tar.getmembers():
        relpath = _checked_relpath(member.name, archive)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} is a link (to {member.linkname!r}); "
                f"links are not extracted")
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or FIFO")
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an unsupported type")
        if relpath:
            plan.append((member, relpath, member.isdir()))
    return plan


def _plan_zip(zf, archive):
    plan = []
    for info in zf.infolist():
        relpath = _checked_relpath(info.filename, archive)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)   # 0 when the zip tool stored permissions only
        if kind and stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a link; "
                                     f"links are not extracted")
        if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a plain file")
        if relpath:
            plan.append((info, relpath, info.is_dir()))
    return plan


def _write_member(source, path):
    with open(path, 'xb') as out:   # 'x': never follow or overwrite something already there
        shutil.copyfileobj(source, out, _COPY_CHUNK)


def _check_total(archive, sizes, limit):
    total = sum(sizes)
    if total > limit:
        raise UnsafeArchiveError(f"{archive}: would unpack to {total} bytes, more than the "
                                 f"allowed {limit}")


def _planned_members(archive, handle):
    """The vetted plan of either format as (name in archive, relpath, is_dir, size, opener)."""
    if isinstance(handle, tarfile.TarFile):
        return [(m.name, relpath, is_dir, m.size, lambda m=m: handle.extractfile(m))
                for m, relpath, is_dir in _plan_tar(handle, archive)]
    return [(i.filename, relpath, is_dir, i.file_size, lambda i=i: handle.open(i))
            for i, relpath, is_dir in _plan_zip(handle, archive)]


def _extract_into(archive, root, limit):
    if tarfile.is_tarfile(archive):
        handle = tarfile.open(archive)
    elif zipfile.is_zipfile(archive):
        handle = zipfile.ZipFile(archive)
    else:
        raise UnsafeArchiveError(f"{archive}: not a tar or zip archive")
    with handle:
        plan = _planned_members(archive, handle)
        _check_total(archive, [size for _, _, is_dir, size, _ in plan if not is_dir], limit)
        for name, relpath, is_dir, _, open_member in plan:
            path = _target_path(root, relpath, archive, name)
            if is_dir:
                os.makedirs(path, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open_member() as source:
                _write_member(source, path)


def is_archive(path):
    return tarfile.is_tarfile(path) or zipfile.is_zipfile(path)


def safe_extract(archive, target_dir, max_total_bytes=DEFAULT_MAX_TOTAL_BYTES):
    """Extract `archive` into `target_dir` (created; must not exist yet) or raise, leaving
    no `target_dir` behind."""
    archive, target_dir = str(archive), str(target_dir)
    if os.path.lexists(target_dir):
        raise FileExistsError(f"{target_dir}: already exists; remove it to extract again")
    parent = os.path.dirname(os.path.abspath(target_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.extract-', dir=parent)
    try:
        try:
            _extract_into(archive, staging, max_total_bytes)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
            raise UnsafeArchiveError(f"{archive}: damaged archive ({error})") from None
        os.rename(staging, target_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target_dir
