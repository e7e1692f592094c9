"""A process reads from more archives than it keeps open (a spooled copy has one per
file of the copy): every read still comes from the right file."""

import os

from ilsvrc.sources import containers


def test_more_archives_than_kept_open_each_read_from_its_own_file(tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "_KEEP_OPEN", 3)
    monkeypatch.setattr(containers, "_OPEN", {})
    files = []
    for k in range(10):
        path = str(tmp_path / ("f%d" % k))
        with open(path, "wb") as f:
            f.write(bytes([k]) * 64)
        files.append(containers.Slices(path))
    with containers.Reader() as reader:
        for _ in range(3):                  # round and round: each read evicts one
            for k, c in enumerate(files):
                assert reader.read(c, 8, 16) == bytes([k]) * 16
    assert len(containers._OPEN) <= 3
    for c in list(containers._OPEN):
        c.close(containers._OPEN.pop(c)[1])


def test_a_process_keeps_a_spooled_copy_open():
    assert containers._KEEP_OPEN >= min(64, max(8, os.sysconf("SC_OPEN_MAX") // 4))
