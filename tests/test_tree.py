"""Tests of rake_common/tree.py: trees deeper than Python's recursion limit, walked and removed."""

import os

import pytest

from rake_common.tree import remove_tree, walk


def deep_tree(root, levels=1500):
    path = root
    for _ in range(levels):   # one level at a time: os.makedirs itself would recurse
        path = os.path.join(path, "d")
        os.mkdir(path)
    with open(os.path.join(path, "leaf"), "w") as fh:
        fh.write("x")
    return path


@pytest.mark.timeout(60)
def test_a_tree_deeper_than_the_recursion_limit_is_walked_and_removed(tmp_path):
    root = str(tmp_path / "t")
    os.mkdir(root)
    try:
        leaf_dir = deep_tree(root)
        seen = [(d, f) for d, _, f in walk(root)]
        assert len(seen) == 1501 and seen[-1] == (leaf_dir, ["leaf"])
        os.chmod(os.path.dirname(leaf_dir), 0o500)   # a job made a directory read-only
    finally:
        remove_tree(root)
    assert not os.path.exists(root)


@pytest.mark.timeout(30)
def test_walk_lists_symlinked_directories_but_never_enters_them(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "inside").write_text("x")
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "link").symlink_to(tmp_path / "real")
    (tmp_path / "top" / "f").write_text("y")
    assert list(walk(str(tmp_path / "top"))) == [(str(tmp_path / "top"), ["link"], ["f"])]


@pytest.mark.timeout(30)
def test_remove_tree_leaves_what_a_symlink_points_to(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("x")
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "link").symlink_to(tmp_path / "keep")
    remove_tree(str(tmp_path / "gone"))
    assert not (tmp_path / "gone").exists() and (tmp_path / "keep" / "precious").exists()


@pytest.mark.timeout(90)
def test_an_action_leaving_a_thousand_level_tree_gets_it_back_and_the_run_goes_on(tmp_path):
    from tests.procs import submit
    (tmp_path / "Rakefile").write_text(
        "actionset1:\n"
        "\tremote-p=$(printf 'd/%.0s' $(seq 1 1200)); mkdir -p \"$p\" && echo x > \"$p/f\"; echo made\n"
        "actionset2:\n\techo second\n")
    try:
        res = submit([], cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout == b"made\nsecond\n" and b"Traceback" not in res.stderr
        assert (tmp_path / ("d/" * 1200) / "f").read_bytes() == b"x\n"
    finally:
        remove_tree(str(tmp_path / "d"))


def test_remove_tree_never_follows_a_directory_swapped_for_a_link_while_it_works(tmp_path, monkeypatch):
    """A process an action left may still own a directory in the sandbox and swap it for a
    link to somewhere else just as we look into it."""
    import contextlib
    from rake_common import tree
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "canary").write_text("keep")
    mode = victim.stat().st_mode
    (tmp_path / "t" / "a" / "d").mkdir(parents=True)
    (tmp_path / "t" / "a" / "d" / "f").write_text("x")
    real_listdir, real_scandir = os.listdir, os.scandir

    def swap_before_listing_d(target):
        where = target if isinstance(target, str) else os.readlink(f"/proc/self/fd/{target}")
        if where == str(tmp_path / "t" / "a" / "d") and not (tmp_path / "moved-away").exists():
            os.rename(tmp_path / "t" / "a" / "d", tmp_path / "moved-away")
            os.symlink(victim, tmp_path / "t" / "a" / "d")

    def listdir(target="."):
        swap_before_listing_d(target)
        return real_listdir(target)

    def scandir(target="."):
        swap_before_listing_d(target)
        with real_scandir(target) as it:
            return contextlib.nullcontext(list(it))
    monkeypatch.setattr(tree.os, "listdir", listdir)
    monkeypatch.setattr(tree.os, "scandir", scandir)
    remove_tree(str(tmp_path / "t"))
    monkeypatch.undo()
    assert (tmp_path / "moved-away").exists(), "the swap never happened: the test proves nothing"
    assert (victim / "canary").read_text() == "keep" and (victim / "sub").is_dir()
    assert victim.stat().st_mode == mode   # not even made 0700
    assert not (tmp_path / "t").exists()


@pytest.mark.timeout(60)
def test_a_tree_deeper_than_the_open_files_limit_is_removed_too(tmp_path):
    """A descriptor is held per level: 1500 levels under a soft limit of 1024 (in a child,
    so the limit of the tests' own process stays as it was)."""
    import subprocess
    import sys
    root = tmp_path / "t"
    root.mkdir()
    try:
        deep_tree(str(root), 1500)
        script = ("import resource, sys; from rake_common.tree import remove_tree; "
                  "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
                  "remove_tree(sys.argv[1])")
        subprocess.run([sys.executable, "-c", script, str(root)], check=True, timeout=50,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert not root.exists()
    finally:
        remove_tree(str(root))
