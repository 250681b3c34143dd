"""The broker's live dashboard (--http): /api/status, /metrics and the page in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.procs import command, processes_running, rake_env, wait_until

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def http_cluster(procs, tmp_path: Path, names=("w1", "w2")) -> tuple[str, str]:
    """A broker serving --http on a free loopback port, plus workers: (endpoint, url) once all joined."""
    log = tmp_path / "broker.log"
    proc = procs.start(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "--http", "127.0.0.1:0"],
                       stdout=subprocess.PIPE, stderr=log.open("wb"))
    endpoint = proc.stdout.readline().decode().strip()
    url = proc.stdout.readline().decode().strip()
    assert endpoint.startswith("tcp://127.0.0.1:") and url.startswith("http://127.0.0.1:"), (endpoint, url)
    for name in names:
        procs.worker(endpoint, name, tmp_path / f"scratch-{name}")
    assert wait_until(lambda: log.read_text().count(" joined") >= len(names), 15), log.read_text()
    return endpoint, url


def get(url: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api_status(url: str) -> dict:
    code, headers, body = get(url + "api/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    return json.loads(body)


@pytest.mark.timeout(60)
def test_api_status_lists_the_connected_workers(procs, tmp_path):
    endpoint, url = http_cluster(procs, tmp_path)
    assert wait_until(lambda: api_status(url)["workers_total"] == 2, 5)
    shape = api_status(url)
    assert sorted(w["name"] for w in shape["workers"]) == ["w1", "w2"]
    assert shape["flight"] == [] and "counters" in shape
    rake_status = subprocess.run(command("rake-status") + ["--broker", endpoint, "--json"], env=rake_env(),
                                 stdout=subprocess.PIPE, timeout=20, check=True)
    assert set(json.loads(rake_status.stdout)) == set(shape)   # one documented shape for both


@pytest.mark.timeout(60)
def test_metrics_are_prometheus_text_naming_each_worker(procs, tmp_path):
    _, url = http_cluster(procs, tmp_path)
    assert wait_until(lambda: b"rake_workers 2\n" in get(url + "metrics")[2], 5)
    code, headers, body = get(url + "metrics")
    text = body.decode()
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE rake_worker_queue gauge" in text and "# HELP rake_results_total " in text
    assert 'rake_worker_queue{worker="w1",id="57' in text and 'rake_worker_slots{worker="w2",id="57' in text
    assert 'rake_messages_total{direction="in",type="READY"}' in text


@pytest.mark.timeout(60)
def test_bad_paths_are_404_other_methods_405_and_foreign_host_names_403(procs, tmp_path):
    _, url = http_cluster(procs, tmp_path, names=())
    assert get(url + "nope")[0] == 404
    assert get(url + "api/status/../../etc/passwd")[0] == 404
    code, headers, _ = get(url + "api/status", method="POST")
    assert code == 405 and headers["Allow"] == "GET, HEAD"
    assert get(url + "api/status", headers={"Host": "attacker.example:80"})[0] == 403
    code, headers, body = get(url, method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    code, headers, body = get(url)
    assert code == 200 and b"<table id=\"workers\">" in body
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    assert b"http://" not in body and b"https://" not in body   # nothing fetched from elsewhere


@pytest.mark.timeout(30)
def test_a_non_loopback_http_address_needs_insecure(tmp_path):
    out = subprocess.run(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "--http", "0.0.0.0:0"],
                         env=rake_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and "--insecure" in out.stderr


@pytest.mark.timeout(90)
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'; "
                                              ".ci/run installs it when run as root)")
def test_the_page_in_a_headless_browser_shows_one_row_per_worker(procs, tmp_path):
    _, url = http_cluster(procs, tmp_path, names=("w1", "w2", "w3"))
    assert wait_until(lambda: api_status(url)["workers_total"] == 3, 5)
    dom = dump_dom(url, tmp_path / "chromium-profile")
    assert dom.count('<tr class="worker"') == 3, dom[-3000:]
    assert all(f"<td>{name}</td>" in dom for name in ("w1", "w2", "w3"))
    assert '<span id="live" class="ok">live</span>' in dom


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, from a throw-away Chromium; nothing of it survives."""
    args = ["timeout", "60", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=75)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # helpers (zygote, renderers) share its group
        except ProcessLookupError:
            pass
        proc.wait()
        assert wait_until(lambda: not processes_running(str(profile)), 10), "chromium processes outlived the test"
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out.decode("utf-8", "replace")


@pytest.mark.timeout(30)
def test_a_non_loopback_http_address_from_the_config_file_names_the_file_and_key(tmp_path):
    conf = tmp_path / "rake"
    conf.mkdir()
    (conf / "config.toml").write_text('[rake-broker]\nhttp = "0.0.0.0:0"\n')
    env = rake_env(XDG_CONFIG_HOME=str(tmp_path))
    shown = subprocess.run(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*", "--show-config"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    out = subprocess.run(command("rake-broker") + ["--bind", "tcp://127.0.0.1:*"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and "--insecure" in out.stderr
    assert f"{conf / 'config.toml'}:2: 'rake-broker.http'" in out.stderr, out.stderr
    # --show-config refuses what a start would refuse, as for --bind, --rate and --burst
    assert shown.returncode == 2 and shown.stderr == out.stderr.replace("error: ", ""), shown.stderr
