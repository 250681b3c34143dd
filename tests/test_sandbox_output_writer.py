"""Writing outputs on the submitter's side (submitter/files.py OutputWriter)."""

import os

import pytest

from submitter.files import OutputRefused, OutputWriter

from tests.sandbox_helpers import mode_of, tree


# ---- OutputWriter ------------------------------------------------------------------------

def test_output_writer_writes_contents_and_mode_bits(tmp_path):
    w = OutputWriter(str(tmp_path))
    assert w.write("prog", 0o755, b"\x7fELF", line=3) == "prog"
    w.write("obj/deep/x.o", 0o600, memoryview(b"object"), line=4)
    assert (tmp_path / "prog").read_bytes() == b"\x7fELF"
    assert mode_of(tmp_path / "prog") == 0o755
    assert os.access(tmp_path / "prog", os.X_OK)
    assert (tmp_path / "obj" / "deep" / "x.o").read_bytes() == b"object"
    assert mode_of(tmp_path / "obj" / "deep" / "x.o") == 0o600


def test_the_umask_is_read_without_being_changed():
    from submitter.files import current_umask
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_directories_made_for_outputs_follow_the_umask_as_mkdir_p_does(tmp_path):
    old = os.umask(0o002)
    try:
        OutputWriter(str(tmp_path)).write("team/sub/f", 0o664, b"x", line=2)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "team") == mode_of(tmp_path / "team" / "sub") == 0o775


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another group needs root or membership")
def test_a_download_placed_in_a_setgid_directory_takes_its_group_as_a_file_written_there_does(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 100)
    os.chmod(shared, 0o2775)
    download = tmp_path / "download"
    download.write_bytes(b"big")
    os.chown(download, -1, 0)
    w = OutputWriter(str(tmp_path))
    w.place("shared/big", 0o644, str(download), line=2)
    w.write("shared/small", 0o644, b"s", line=2)
    assert os.stat(shared / "big").st_gid == os.stat(shared / "small").st_gid == 100


def test_output_writer_writes_a_name_of_the_longest_length_the_file_system_allows(tmp_path):
    name = "n" * 240 + "é" * 7   # 254 bytes: no room left to build a temporary name on it
    OutputWriter(str(tmp_path)).write(f"sub/{name}", 0o644, b"x", line=2)
    assert (tmp_path / "sub" / name).read_bytes() == b"x"
    assert os.listdir(tmp_path / "sub") == [name]


def test_staged_names_of_one_action_never_collide_however_the_random_bytes_fall(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)   # as two draws of 32 bits may
    w = OutputWriter(str(tmp_path))
    for name in ("out/a", "out/b", "out/c"):
        w.stage(name, 0o644, line=2, data=name.encode())
    w.commit()
    assert [(tmp_path / n).read_bytes() for n in ("out/a", "out/b", "out/c")] == [b"out/a", b"out/b", b"out/c"]


def test_output_writer_leaves_no_temporary_files(tmp_path):
    w = OutputWriter(str(tmp_path))
    w.write("a", 0o644, b"1", line=1)
    w.write("d/b", 0o644, b"", line=2)
    assert tree(tmp_path) == ["a", "d", "d/b"]


def test_output_writer_replaces_an_existing_file_by_rename(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old contents")
    old_inode = os.stat(target).st_ino
    # Someone holding the old file open still sees the old contents: it was replaced, not rewritten.
    with open(target, "rb") as held:
        OutputWriter(str(tmp_path)).write("out.txt", 0o644, b"new", line=1)
        assert held.read() == b"old contents"
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_ino != old_inode


def test_output_writer_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "victim", root / "out")
    OutputWriter(str(root)).write("out", 0o644, b"evil", line=1)
    assert (outside / "victim").read_bytes() == b"precious"
    assert not os.path.islink(root / "out") and (root / "out").read_bytes() == b"evil"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../up", "a/../../up", "a/..", "", "x\0y", "dir/"])
def test_output_writer_refuses_names_outside_the_working_directory(tmp_path, bad):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(OutputRefused):
        OutputWriter(str(root)).write(bad, 0o644, b"x", line=1)
    assert tree(tmp_path) == ["root"]


@pytest.mark.parametrize("via", ["link/f", "link/sub/f", "real/link/f"])
def test_output_writer_refuses_to_write_through_a_symlinked_directory(tmp_path, via):
    canary = tmp_path / "canary"
    canary.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "real").mkdir()
    os.symlink(canary, root / "link")
    os.symlink(canary, root / "real" / "link")
    with pytest.raises(OutputRefused):
        OutputWriter(str(root)).write(via, 0o644, b"escaped", line=1)
    assert os.listdir(canary) == []


def test_output_writer_refuses_a_file_in_the_way_of_a_directory(tmp_path):
    (tmp_path / "a").write_bytes(b"file")
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("a/b", 0o644, b"x", line=1)
    assert (tmp_path / "a").read_bytes() == b"file"


def test_output_writer_refuses_a_directory_in_the_way_of_a_file(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_bytes(b"k")
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("d", 0o644, b"x", line=1)
    (tmp_path / "d" / "out").mkdir()
    with pytest.raises(OutputRefused, match="'d/out': a directory is in the way"):   # the whole path
        OutputWriter(str(tmp_path)).write("d/out", 0o644, b"x", line=1)
    assert tree(tmp_path) == ["d", "d/keep", "d/out"]


def test_output_writer_refuses_the_same_path_from_two_actions(tmp_path):
    w = OutputWriter(str(tmp_path))
    w.write("out/x.o", 0o644, b"first", line=5)
    with pytest.raises(OutputRefused) as err:
        w.write("./out//x.o", 0o644, b"second", line=9)
    assert "out/x.o" in str(err.value) and "5" in str(err.value) and "9" in str(err.value)
    assert (tmp_path / "out" / "x.o").read_bytes() == b"first"


@pytest.mark.parametrize("first, second, message", [
    ("gen", "gen/x", "cannot write 'gen/x': output 'gen' of line 5 is a file, not a directory"),
    ("gen/sub/x", "gen", "cannot write 'gen': it is also the directory of an output of line 5"),
])
def test_a_file_and_a_directory_of_one_name_from_two_actions_name_the_other_line(tmp_path, first, second, message):
    w = OutputWriter(str(tmp_path))
    w.write(first, 0o644, b"first", line=5)
    with pytest.raises(OutputRefused, match=message):
        w.write(second, 0o644, b"second", line=9)
    assert (tmp_path / first).read_bytes() == b"first"


@pytest.mark.parametrize("order", [["x", "a", "a/b"], ["x", "a/b", "a"], ["a/b/c", "x", "a/b"]])
def test_an_action_whose_outputs_are_a_file_and_a_directory_of_one_name_writes_nothing(tmp_path, order):
    """All of an action's outputs or none: `a` and `a/b` cannot both land, so neither does `x`,
    and no directory made for staging them is left behind."""
    (tmp_path / "keep").write_bytes(b"k")
    w = OutputWriter(str(tmp_path))
    with pytest.raises(OutputRefused) as err:
        for path in order:
            w.stage(path, 0o644, 7, data=path.encode())
    w.abort()
    clash = sorted(p for p in order if p != "x")
    assert all(repr(p) in str(err.value) for p in clash), err.value
    assert "same action" in str(err.value)
    assert tree(tmp_path) == ["keep"]
    assert w.write("a/b", 0o644, b"later", line=8) == "a/b"   # nothing of the refused one lingers


def test_a_directory_made_for_an_output_that_then_cannot_be_written_is_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "out").mkdir()   # a directory in the way of the second output
    w = OutputWriter(str(tmp_path))
    w.stage("new/deep/first", 0o644, 3, data=b"1")
    with pytest.raises(OutputRefused, match="a directory is in the way"):
        w.stage("sub/out", 0o644, 3, data=b"2")
    w.abort()
    assert tree(tmp_path) == ["sub", "sub/out"]


def test_an_action_with_thousands_of_outputs_holds_a_descriptor_per_directory_not_per_file(tmp_path):
    w = OutputWriter(str(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(3000):
        w.stage(f"out{i % 3}/f{i}", 0o644, 2, data=b"x")
    assert len(os.listdir("/proc/self/fd")) - before <= 3
    assert len(w.commit()) == 3000 and len(os.listdir("/proc/self/fd")) == before
    assert len(os.listdir(tmp_path / "out1")) == 1000 and (tmp_path / "out1" / "f2998").read_bytes() == b"x"


def test_an_action_writing_into_thousands_of_directories_keeps_few_open(tmp_path):
    w = OutputWriter(str(tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(1100):
        w.stage(f"d{i}/out.o", 0o644, 2, data=b"o")
    assert len(os.listdir("/proc/self/fd")) - before <= 64
    assert len(w.commit()) == 1100 and (tmp_path / "d1099" / "out.o").read_bytes() == b"o"
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_refused_single_write_leaves_no_directory_open(tmp_path):
    (tmp_path / "sub" / "x").mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OutputRefused):
        OutputWriter(str(tmp_path)).write("sub/x", 0o644, b"data", line=1)
    assert len(os.listdir("/proc/self/fd")) == before
