"""Archive extraction refuses anything that could land outside the target folder."""
import io
import os
import tarfile
import zipfile

import pytest

from ppdet_gcnet.weights.archive import UnsafeArchiveError, safe_extract


def _tar(path, members):
    """members: (TarInfo, bytes or None)."""
    with tarfile.open(path, 'w') as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name, data=b'x'):
    return tarfile.TarInfo(name), data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_plain_archive_extracts(tmp_path):
    archive = _tar(tmp_path / 'ok.tar', [_file('model/a_weights', b'abc'),
                                         _file('model/sub/b', b'de')])
    out = safe_extract(archive, tmp_path / 'out')
    assert (tmp_path / 'out/model/a_weights').read_bytes() == b'abc'
    assert (tmp_path / 'out/model/sub/b').read_bytes() == b'de'
    assert out == str(tmp_path / 'out')


@pytest.mark.parametrize('members, message', [
    ([_file('model/ok'), _file('../evil')], "climbs out"),
    ([_file('model/../../evil')], "climbs out"),
    ([_file('/tmp/evil-abs')], "absolute path"),
    ([_link('model/link', '/etc/passwd')], "is a link"),
    ([_link('model/link', '../../outside')], "is a link"),
    ([_link('model/hard', '../outside', tarfile.LNKTYPE)], "is a link"),
])
def test_escaping_members_are_refused_and_nothing_is_written(tmp_path, members, message):
    archive = _tar(tmp_path / 'bad.tar', members)
    target = tmp_path / 'box' / 'out'
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, target)
    assert not target.exists()
    assert os.listdir(tmp_path / 'box') == []       # no staging folder left either
    assert not (tmp_path / 'evil').exists() and not os.path.exists('/tmp/evil-abs')


def test_device_files_are_refused(tmp_path):
    info = tarfile.TarInfo('model/dev')
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    archive = _tar(tmp_path / 'dev.tar', [(info, None)])
    with pytest.raises(UnsafeArchiveError, match='device or FIFO'):
        safe_extract(archive, tmp_path / 'out')


def test_zip_with_parent_path_is_refused(tmp_path):
    archive = tmp_path / 'bad.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('model/ok', b'1')
        zf.writestr('../evil', b'2')
    with pytest.raises(UnsafeArchiveError, match='climbs out'):
        safe_extract(archive, tmp_path / 'out')
    assert not (tmp_path / 'evil').exists() and not (tmp_path / 'out').exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / 'link.zip'
    info = zipfile.ZipInfo('model/link')
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr(info, '/etc/passwd')
    with pytest.raises(UnsafeArchiveError, match='is a link'):
        safe_extract(archive, tmp_path / 'out')


def test_not_an_archive(tmp_path):
    path = tmp_path / 'x.tar'
    path.write_bytes(b'hello, not a tar')
    with pytest.raises(UnsafeArchiveError, match='not a tar or zip'):
        safe_extract(path, tmp_path / 'out')


def test_size_bound_and_damaged_archives(tmp_path):
    archive = _tar(tmp_path / 'big.tar', [_file('model/a', b'x' * 1000)])
    with pytest.raises(UnsafeArchiveError, match='would unpack to 1000 bytes'):
        safe_extract(archive, tmp_path / 'out', max_total_bytes=999)
    assert not (tmp_path / 'out').exists()
    data = (tmp_path / 'big.tar').read_bytes()
    (tmp_path / 'cut.tar').write_bytes(data[:700])       # header fine, member data cut
    with pytest.raises(UnsafeArchiveError):
        safe_extract(tmp_path / 'cut.tar', tmp_path / 'out2')
    assert not (tmp_path / 'out2').exists()
