"""HTTP(S) download into a cache file: resumable, length- and checksum-verified, lock-guarded.

What it guarantees, and ppdet's downloader does not:
- the bytes go to `<dest>.part`; `<dest>` appears (fsync + atomic rename) only after the length
  matched the server's and the checksum matched (a pinned sha256/md5, else the server's
  Content-MD5 header); a rejected file is deleted, never left under the final name;
- an interrupted transfer resumes from `<dest>.part` with an HTTP Range request (If-Range keeps
  a changed file from being stitched onto an old prefix), automatically for a few attempts
  and again on the next run;
- processes that download the same file at once (a distributed launch) serialize on an
  exclusive lock `<dest>.lock`; the later ones find the finished file and use it;
- 404s, refused connections, timeouts and checksum mismatches end in one-line errors naming
  the URL.
"""
import base64
import binascii
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request

_CHUNK = 1 << 16
_USER_AGENT = 'ppdet-gcnet-weights/1'


class DownloadError(RuntimeError):
    """A download that could not complete or verify; the message names the URL."""


class ChecksumMismatch(DownloadError):
    pass


class Unreachable(DownloadError):
    """No answer from the server at all (refused, no route or name, timed out): usually no
    network here."""


@contextlib.contextmanager
def file_lock(path):
    """Exclusive advisory lock held for the block (between processes and threads alike,
    since every holder opens its own file description)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'a+b') as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def file_digest(path, algorithm):
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path):
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(tmp_path, final_path):
    """fsync `tmp_path`, rename it to `final_path` atomically, fsync the folder."""
    with open(tmp_path, 'rb+') as handle:
        os.fsync(handle.fileno())
    os.replace(tmp_path, final_path)
    _fsync_dir(final_path)


def content_md5_hex(header_value):
    """Content-MD5 is base64 of the 16 digest bytes (RFC 1864); some servers send hex."""
    value = (header_value or '').strip()
    if re.fullmatch(r'[0-9a-fA-F]{32}', value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


class _Progress:
    """One-line progress bar on stderr, redrawn at most 5 times a second."""

    def __init__(self, label, total, start, enabled):
        self.label, self.total, self.done, self.enabled = label, total, start, enabled
        self._last = 0.0

    def update(self, nbytes, final=False):
        self.done += nbytes
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 0.2):
            return
        self._last = now
        mb = self.done / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = '#' * int(frac * 30)
            line = (f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% "
                    f"{mb:.1f}/{self.total / 1e6:.1f} MB")
        else:
            line = f"\r{self.label} {mb:.1f} MB"
        sys.stderr.write(line + ('\n' if final else ''))
        sys.stderr.flush()


def _read_meta(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _write_meta(path, meta):
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(meta, handle)
    os.replace(tmp, path)


def _discard(*paths):
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _open(url, headers, timeout):
    request = urllib.request.Request(url, headers={'User-Agent': _USER_AGENT, **headers})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:
            return error   # caller restarts from byte 0
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ConnectionRefusedError):
            raise Unreachable(f"{url}: connection refused") from None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise Unreachable(f"{url}: timed out after {timeout:g}s") from None
        raise Unreachable(f"{url}: cannot connect ({reason})") from None
    except (socket.timeout, TimeoutError):
        raise Unreachable(f"{url}: timed out after {timeout:g}s") from None
    except ConnectionError as error:
        raise Unreachable(f"{url}: connection failed ({error})") from None


_CONTENT_RANGE = re.compile(r'bytes (\d+)-(\d+)/(\d+|\*)')


class _CutOff(Exception):
    """The body ended (or stalled) before the announced length: resumable."""


def _transfer_once(url, part, meta_path, timeout, progress):
    """One HTTP request appending to (or restarting) `part`. Returns the metadata of the whole
    file; raises _CutOff if the body stopped early."""
    meta = _read_meta(meta_path)
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have and meta.get('url') != url:
        _discard(part, meta_path)
        have, meta = 0, {}
    if have and have == meta.get('total'):
        return meta   # complete but not yet verified (an earlier run stopped there)
    headers = {}
    if have:
        headers['Range'] = f'bytes={have}-'
        validator = meta.get('etag') or meta.get('last_modified')
        if validator:
            headers['If-Range'] = validator
    response = _open(url, headers, timeout)
    with contextlib.closing(response):
        status = getattr(response, 'status', None) or response.getcode()
        if status == 416:   # our prefix is no prefix of this file: start over
            _discard(part, meta_path)
            raise _CutOff('range not satisfiable; restarting')
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get('Content-Range', '').strip())
            if not match or int(match.group(1)) != have:
                _discard(part, meta_path)
                raise _CutOff('server resumed at the wrong offset; restarting')
            total = None if match.group(3) == '*' else int(match.group(3))
            if meta.get('total') and total and total != meta['total']:
                _discard(part, meta_path)
                raise _CutOff('file size changed on the server; restarting')
            mode = 'ab'
        elif status == 200:
            length = response.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
            meta = {'url': url, 'total': total,
                    # Content-MD5 of a 200 describes the whole file; of a 206 only the range.
                    'content_md5': content_md5_hex(response.headers.get('Content-MD5')),
                    'etag': response.headers.get('ETag'),
                    'last_modified': response.headers.get('Last-Modified')}
            _write_meta(meta_path, meta)
            have, mode = 0, 'wb'
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {status}")
        bar = _Progress(os.path.basename(part[:-5]), total, have, progress)
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (socket.timeout, TimeoutError, ConnectionError,
                            http.client.HTTPException) as error:
                        raise _CutOff(f'transfer interrupted ({type(error).__name__})') from None
                    if not block:
                        break
                    out.write(block)
                    bar.update(len(block))
        except OSError as error:
            raise DownloadError(f"{url}: writing {part} failed ({error})") from None
        finally:
            bar.update(0, final=True)
    size = os.path.getsize(part)
    if total is not None and size < total:
        raise _CutOff(f'got {size} of {total} bytes')
    if total is not None and size > total:
        _discard(part, meta_path)
        raise DownloadError(f"{url}: received {size} bytes, more than the announced {total}")
    if total is None:
        meta['total'] = size
    return meta


def _verify(url, path, meta, sha256, md5):
    """Pinned hashes first; the server's Content-MD5 only when nothing is pinned."""
    if sha256:
        got = file_digest(path, 'sha256')
        if got != sha256.lower():
            raise ChecksumMismatch(f"{url}: sha256 mismatch (pinned {sha256}, got {got})")
        return 'sha256 (pinned)'
    if md5:
        got = file_digest(path, 'md5')
        if got != md5.lower():
            raise ChecksumMismatch(f"{url}: md5 mismatch (pinned {md5}, got {got})")
        return 'md5 (pinned)'
    if meta.get('content_md5'):
        got = file_digest(path, 'md5')
        if got != meta['content_md5']:
            raise ChecksumMismatch(f"{url}: Content-MD5 mismatch (server says "
                                   f"{meta['content_md5']}, got {got})")
        return 'md5 (server Content-MD5)'
    return 'length only (no pinned hash, no Content-MD5)'


def download(url, dest, sha256=None, md5=None, timeout=60.0, attempts=4, progress=True,
             log=None):
    """Fetch `url` to `dest` (verified, atomically published) unless a verified `dest` exists.
    Returns `dest`. Raises DownloadError (ChecksumMismatch for bad checksums)."""
    dest = str(dest)
    part, meta_path, lock = dest + '.part', dest + '.part.json', dest + '.lock'
    log = log or (lambda message: print(message, file=sys.stderr))
    with file_lock(lock):
        if os.path.exists(dest):
            if sha256 or md5:
                try:
                    _verify(url, dest, {}, sha256, md5)
                except ChecksumMismatch:
                    log(f"[weights] cached {dest} fails its pinned checksum; downloading again")
                    os.remove(dest)
            if os.path.exists(dest):
                return dest
        last = None
        for attempt in range(1, attempts + 1):
            try:
                meta = _transfer_once(url, part, meta_path, timeout, progress)
                break
            except _CutOff as error:
                last = error
                log(f"[weights] {url}: {error}; attempt {attempt}/{attempts}, resuming")
                time.sleep(min(0.2 * attempt, 1.0))
        else:
            raise DownloadError(f"{url}: incomplete after {attempts} attempts ({last}); "
                                f"{part} is kept, run again to resume")
        try:
            how = _verify(url, part, meta, sha256, md5)
        except ChecksumMismatch:
            _discard(part, meta_path)
            raise
        publish(part, dest)
        _discard(meta_path)
        log(f"[weights] {url} -> {dest} ({os.path.getsize(dest)} bytes, verified by {how})")
        return dest
