"""rake-submit's settings: each from its flag, the environment, the config files or the default."""

from __future__ import annotations

import argparse
import math
import os

from rake_common.config import Config, Setting, resolve
from rakeauth.client import KEY_ENV, SERVER_ENV
from submitter.rakefile import Rakefile
from submitter.terminal import color_setting

# What an unset value means, for --show-config.
UNSET = {"jobs": "all the cluster's slots", "timeout": "none"}
DEFAULTS = {"jobs": None, "timeout": None, "connect_timeout": 3.0, "worker_wait": 10.0, "broker_wait": 60.0}


def submit_settings(args: argparse.Namespace, config: Config, env: dict[str, str] | None = None) -> dict[str, Setting]:
    """Every configurable value, by precedence: flag, environment, config files, default."""
    env = os.environ if env is None else env
    found = [resolve("broker", args.broker, "--broker", config, "", "broker", None, "RAKE_BROKER", env)]
    for name, default in DEFAULTS.items():
        flag = "-j" if name == "jobs" else "--" + name.replace("_", "-")
        found.append(resolve(name, getattr(args, name), flag, config, "", name, default, env=env))
    found.append(Setting("color", *color_setting(args.color, config.get("", "color"), env)))
    found.append(resolve("curve_key", args.curve_key, "--curve-key", config, "", "curve_key", None, KEY_ENV, env))
    found.append(resolve("server_key", args.server_key, "--server-key", config, "", "server_key", None, SERVER_ENV, env))
    return {s.name: s for s in found}


def broker_setting(chosen: Setting, rakefile: Rakefile | None) -> Setting:
    """For --show-config: with no broker set, the Rakefile's HOSTS, else the embedded cluster."""
    if chosen.value is not None:
        return chosen
    if rakefile is not None and rakefile.hosts:
        endpoints = ", ".join(h.endpoint for h in rakefile.hosts)
        return Setting("broker", endpoints, f"the Rakefile's HOSTS, line {rakefile.hosts[0].line}")
    return Setting("broker", "embedded local cluster", "default")


def for_display(setting: Setting) -> Setting:
    if setting.value is None and setting.name in UNSET:
        return Setting(setting.name, UNSET[setting.name], setting.source)
    if setting.name == "jobs" and setting.value == math.inf:   # a bare -j
        return Setting("jobs", "no limit: " + UNSET["jobs"], setting.source)
    return setting
