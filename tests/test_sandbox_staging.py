"""Staging a job's inputs into its sandbox (worker/sandbox.py stage_inputs), on real directories."""

import os

import pytest

from worker.sandbox import StagingError, stage_inputs

from tests.sandbox_helpers import mode_of, tree


# ---- stage_inputs ------------------------------------------------------------------------

def test_staged_inputs_keep_their_sub_directories_contents_and_mode_bits(tmp_path):
    stage_inputs(str(tmp_path), [
        ("main.c", 0o644, b"int main;"),
        ("inc/defs.h", 0o600, b"#define A\n"),
        ("tools/deep/gen.sh", 0o755, b"#!/bin/sh\necho gen\n"),
    ])
    assert (tmp_path / "main.c").read_bytes() == b"int main;"
    assert (tmp_path / "inc" / "defs.h").read_bytes() == b"#define A\n"
    assert mode_of(tmp_path / "main.c") == 0o644
    assert mode_of(tmp_path / "inc" / "defs.h") == 0o600
    assert mode_of(tmp_path / "tools" / "deep" / "gen.sh") == 0o755
    assert os.access(tmp_path / "tools" / "deep" / "gen.sh", os.X_OK)


def test_staging_an_empty_file_and_binary_data_works(tmp_path):
    data = bytes(range(256)) * 100
    stage_inputs(str(tmp_path), [("empty", 0o644, b""), ("bin", 0o644, data)])
    assert (tmp_path / "empty").read_bytes() == b""
    assert (tmp_path / "bin").read_bytes() == data


def test_staging_drops_setuid_and_sticky_bits(tmp_path):
    stage_inputs(str(tmp_path), [("x", 0o4755, b"")])
    assert mode_of(tmp_path / "x") == 0o755


def test_staging_spells_each_name_once(tmp_path):
    snapshot = stage_inputs(str(tmp_path), [("./a//b.c", 0o644, b"x")])
    assert (tmp_path / "a" / "b.c").read_bytes() == b"x"
    assert list(snapshot) == ["a/b.c"]


BAD_NAMES = {
    "absolute": "/etc/passwd",
    "dot-dot": "../escape",
    "inner dot-dot": "a/../../escape",
    "trailing dot-dot": "a/..",
    "empty": "",
    "nul": "a\0b",
    "a directory": "dir/",
    "dot": ".",
}


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_input_name_is_refused_before_anything_is_written(tmp_path, bad):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    files = [("first.c", 0o644, b"1"), ("sub/second.c", 0o644, b"2"), (bad, 0o644, b"evil")]
    with pytest.raises(StagingError):
        stage_inputs(str(sandbox), files)
    assert tree(sandbox) == []
    assert tree(tmp_path) == ["sandbox"]


@pytest.mark.parametrize("a, b", [("x.c", "x.c"), ("d/x.c", "./d//x.c")])
def test_the_same_input_name_twice_is_refused_before_anything_is_written(tmp_path, a, b):
    with pytest.raises(StagingError):
        stage_inputs(str(tmp_path), [("other", 0o644, b""), (a, 0o644, b"1"), (b, 0o644, b"2")])
    assert tree(tmp_path) == []


def test_an_input_that_is_also_a_directory_of_another_is_refused(tmp_path):
    with pytest.raises(StagingError):
        stage_inputs(str(tmp_path), [("a", 0o644, b"file"), ("a/b", 0o644, b"inside")])
