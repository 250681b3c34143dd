"""Key files and client key options (rakeauth/keys.py, rakeauth/client.py, rake-keygen)."""

from __future__ import annotations

import os

import pytest

from rakeauth.client import client_curve
from rakeauth.keys import KeyFileError, make_keypair, read_keys, read_secret


# ---- key files and client options ------------------------------------------------------------
def test_keygen_writes_a_public_file_and_a_private_secret_file(tmp_path):
    public, secret = make_keypair(str(tmp_path), "alice")
    assert os.stat(secret).st_mode & 0o777 == 0o600
    pub, none = read_keys(public)
    assert none is None and read_secret(secret)[0] == pub
    with pytest.raises(KeyFileError, match="already exists"):
        make_keypair(str(tmp_path), "alice")


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 65])
def test_keygen_refuses_a_name_that_is_not_a_plain_word(tmp_path, name):
    with pytest.raises(KeyFileError):
        make_keypair(str(tmp_path), name)


def test_rake_keygen_refuses_a_bad_name_before_making_its_directory(tmp_path):
    import subprocess
    from tests.procs import command, rake_env
    res = subprocess.run(command("rake-keygen") + [str(tmp_path / "new"), ".hidden"], env=rake_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "not starting with '.'" in res.stderr, res.stderr
    assert not (tmp_path / "new").exists()


def test_rake_keygen_into_a_regular_file_says_it_is_not_a_directory(tmp_path):
    import subprocess
    from tests.procs import command, rake_env
    (tmp_path / "afile").write_text("")
    res = subprocess.run(command("rake-keygen") + [str(tmp_path / "afile"), "k"], env=rake_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and res.stderr.endswith("afile: it is not a directory\n"), res.stderr


def test_a_malformed_key_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text('public-key = "short"\n')
    with pytest.raises(KeyFileError, match="bad.key"):
        read_keys(str(bad))
    public, _ = make_keypair(str(tmp_path), "pub")
    with pytest.raises(KeyFileError, match="no secret key"):
        read_secret(public)


def test_client_keys_come_from_flags_or_environment_and_both_are_needed(tmp_path):
    public, secret = make_keypair(str(tmp_path), "w1")
    assert client_curve(None, None, env={}) is None
    env = {"RAKE_CURVE_KEY": secret, "RAKE_SERVER_KEY": public}
    assert client_curve(None, None, env=env).server == read_keys(public)[0]
    with pytest.raises(KeyFileError, match="--server-key"):
        client_curve(secret, None, env={})


def test_a_key_whose_z85_overflows_is_refused_not_a_crash(tmp_path):
    bad = tmp_path / "overflow.key"
    bad.write_text('public-key = "' + "#" * 40 + '"\n')   # each group decodes past 2**32
    with pytest.raises(KeyFileError, match="overflow.key"):
        read_keys(str(bad))


def test_a_dangling_link_in_a_key_directory_skips_only_that_entry(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    make_keypair(str(subs), "alice")
    os.symlink(tmp_path / "nowhere.key", subs / "bob.key")
    ring = KeyRing(str(subs), str(workers), log=lambda s: None)
    assert [u.name for u in ring.current.values()] == ["alice"]


@pytest.mark.timeout(10)
def test_a_fifo_named_like_a_key_is_skipped_without_hanging_the_broker(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    make_keypair(str(subs), "alice")
    os.mkfifo(workers / "oops.key")   # nobody will ever write to it
    lines = []
    ring = KeyRing(str(subs), str(workers), log=lines.append)
    assert [u.name for u in ring.current.values()] == ["alice"]
    assert any("oops.key" in line and "not a regular file" in line for line in lines), lines


def test_a_key_directory_problem_is_logged_when_it_starts_not_at_every_refresh(tmp_path):
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    lines = []
    ring = KeyRing(str(subs), str(workers), log=lines.append)
    workers.rmdir()
    for _ in range(5):
        ring.refresh()
    assert sum("cannot read --worker-keys" in line for line in lines) == 1
    workers.mkdir()
    ring.refresh()
    workers.rmdir()
    ring.refresh()
    assert sum("cannot read --worker-keys" in line for line in lines) == 2   # gone again: said again


def test_a_key_named_on_the_command_line_may_come_from_a_pipe(tmp_path):
    make_keypair(str(tmp_path), "alice")
    text = (tmp_path / "alice.key_secret").read_bytes()
    r, w = os.pipe()
    os.write(w, text)
    os.close(w)
    try:
        public, secret = read_keys(f"/dev/fd/{r}")   # as `--curve-key <(vault read ...)` gives
    finally:
        os.close(r)
    assert secret is not None and len(public) == 40


def test_a_key_file_whose_mode_or_owner_changed_is_read_again(tmp_path):
    """A key the broker could not read (its mode or owner), once fixed, counts at the next look."""
    from broker.auth import KeyRing
    subs, workers = tmp_path / "subs", tmp_path / "workers"
    subs.mkdir()
    workers.mkdir()
    make_keypair(str(workers), "w1")
    ring = KeyRing(str(subs), str(workers), log=lambda s: None)
    assert ring.refresh() is False   # nothing changed
    os.chmod(workers / "w1.key", 0o600)
    assert ring.refresh() is True
