"""Crash-safe training checkpoints and finding the newest complete one.

A checkpoint is ppdet's files under one name in the run's save_dir (`<name>.pdparams`,
`<name>.pdopt`, `<name>.pdema` with EMA, upstream's `best_model/model.pdparams`) plus a
completion record `<name>.ckpt.json` written here: the files' sizes and SHA-256, the epoch, and
the random state at the save (`rng_state`). Writing one:

1. ppdet's own saver writes every file into a fresh staging directory `.<name>.tmp-*` in
   save_dir; each file is fsynced there;
2. the old record of that name is removed (from here until step 4 the name is incomplete);
3. every file is renamed into place (`.pdopt` before `.pdparams`, so a new name never shows a
   weights file without its optimizer state);
4. the record is written to a temporary name, fsynced and renamed; the directory is fsynced.

A kill at any moment leaves every file under a checkpoint name whole (renames are atomic), and
a checkpoint counts as complete only if its record is there and its files match it.
"""
import hashlib
import json
import os
import shutil
import tempfile
import time

RECORD_SUFFIX = '.ckpt.json'
STAGING_PREFIX = '.'
STAGING_MARK = '.tmp-'
# Test-only: stall (until killed) at a named point of a checkpoint write, after touching a
# marker file, so a test can SIGKILL a trainer at exactly that point.
FAULT_ENV = 'PPDET_GCNET_CHECKPOINT_STALL'            # "<point>" or "<point>:<name>"
FAULT_MARK_ENV = 'PPDET_GCNET_CHECKPOINT_STALL_MARK'  # file to create when stalled
FAULT_POINTS = ('staged', 'committing', 'recording')


class CheckpointError(Exception):
    """A checkpoint that cannot be used; one line naming it."""


def _stall_if_asked(point, name):
    wanted = os.environ.get(FAULT_ENV)
    if not wanted or wanted not in (point, f'{point}:{name}'):
        return
    with open(os.environ[FAULT_MARK_ENV], 'w') as f:
        f.write(f'{point}:{name}\n')
    time.sleep(600)  # the test kills us long before; never outlive a test that died itself
    os._exit(70)


def _fsync_file(path):
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _staged_files(staging):
    files = []
    for folder, _, names in os.walk(staging):
        files += [os.path.relpath(os.path.join(folder, n), staging) for n in names]
    # optimizer state first, weights last: a weights file under a new name implies its .pdopt
    return sorted(files, key=lambda rel: (rel.endswith('.pdparams'), rel))


def record_path(save_dir, name):
    return os.path.join(save_dir, name + RECORD_SUFFIX)


def write_atomically(path, text):
    """Write text to `path` by temp file + fsync + rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX + os.path.basename(path) + STAGING_MARK,
                               dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it; mkstemp makes it 0600
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def save_checkpoint(write_files, save_dir, name, epoch, extra=None):
    """Commit checkpoint `name` of `epoch`: `write_files(staging_dir)` writes ppdet's files as
    if staging_dir were save_dir. `extra` goes into the record (e.g. the random state)."""
    os.makedirs(save_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX + name + STAGING_MARK, dir=save_dir)
    try:
        write_files(staging)
        files = {}
        for rel in _staged_files(staging):
            path = os.path.join(staging, rel)
            _fsync_file(path)
            files[rel] = {'size': os.path.getsize(path), 'sha256': _sha256(path)}
        if not files:
            raise CheckpointError(f"checkpoint {name}: the saver wrote no files")
        _stall_if_asked('staged', name)
        record = record_path(save_dir, name)
        if os.path.exists(record):
            os.unlink(record)
            _fsync_dir(save_dir)
        for index, rel in enumerate(files):
            target = os.path.join(save_dir, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, rel), target)
            if index == 0:
                _stall_if_asked('committing', name)
        _fsync_dir(save_dir)
        content = json.dumps({'format': 1, 'name': name, 'epoch': int(epoch), 'files': files,
                              'saved_at': time.time(), **(extra or {})})
        _stall_if_asked('recording', name)
        write_atomically(record, content)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_record(save_dir, name):
    with open(record_path(save_dir, name)) as f:
        return json.load(f)


def verify(save_dir, name, hashes=True):
    """The record of checkpoint `name` if it is complete (record present, every file it lists
    there with its size and, with `hashes`, its SHA-256); else raise CheckpointError."""
    try:
        record = read_record(save_dir, name)
    except FileNotFoundError:
        raise CheckpointError(f"{os.path.join(save_dir, name)}: incomplete checkpoint (no "
                              f"completion record {name + RECORD_SUFFIX}: its write was "
                              f"interrupted, or it was not written by this trainer)")
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{record_path(save_dir, name)}: unreadable record ({error})")
    for rel, expected in record.get('files', {}).items():
        path = os.path.join(save_dir, rel)
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: missing (listed in {name + RECORD_SUFFIX})")
        if os.path.getsize(path) != expected['size']:
            raise CheckpointError(f"{path}: {os.path.getsize(path)} bytes, the record says "
                                  f"{expected['size']}: damaged")
        if hashes and _sha256(path) != expected['sha256']:
            raise CheckpointError(f"{path}: content differs from its record (SHA-256): damaged")
    return record


def recorded_names(save_dir):
    if not os.path.isdir(save_dir):
        return []
    return [f[:-len(RECORD_SUFFIX)] for f in os.listdir(save_dir)
            if f.endswith(RECORD_SUFFIX) and not f.startswith(STAGING_PREFIX)]


def newest_complete(save_dir, hashes=True):
    """(name, record) of the newest complete checkpoint in save_dir, or None. Newest = highest
    epoch; at equal epochs an epoch/model_final checkpoint before best_model. Damaged or
    incomplete ones are skipped, each returned in `skipped` as a one-line reason."""
    candidates = []
    for name in recorded_names(save_dir):
        try:
            epoch = int(read_record(save_dir, name).get('epoch', -1))
        except (ValueError, OSError):
            epoch = -1
        candidates.append((epoch, name != 'best_model', name))
    skipped = []
    for _, _, name in sorted(candidates, reverse=True):
        try:
            return (name, verify(save_dir, name, hashes=hashes)), skipped
        except CheckpointError as error:
            skipped.append(str(error))
    return None, skipped


def remove_stale_staging(save_dir):
    """Staging directories and temp files left by a write that was killed."""
    if not os.path.isdir(save_dir):
        return []
    stale = [f for f in os.listdir(save_dir)
             if f.startswith(STAGING_PREFIX) and STAGING_MARK in f]
    for name in stale:  # every data-parallel process may do this at once
        path = os.path.join(save_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return stale
