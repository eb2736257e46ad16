"""The kill command's early read of the state folder agrees with the settings in every case."""

from __future__ import annotations

import os

import pytest

from n8nctl.cli.context import state_dir_hint
from n8nctl.settings import Settings

CASES = {
    "default": ({}, ""),
    "state dir from the environment": ({"N8NCTL_STATE_DIR": "/srv/state"}, ""),
    "project dir from the environment": ({"N8NCTL_PROJECT_DIR": "/srv/flowbiz"}, ""),
    "state dir from .env": ({}, "N8NCTL_STATE_DIR=/srv/dotenv\n"),
    "quoted, exported, commented .env": ({}, "# state\nexport N8NCTL_STATE_DIR='/srv/a b' # here\n"),
    "project dir from .env, lower case": ({}, "n8nctl_project_dir=/srv/lower\n"),
    "environment over .env": ({"N8NCTL_STATE_DIR": "/srv/env"}, "N8NCTL_STATE_DIR=/srv/file\n"),
    "empty values are unset": ({"N8NCTL_STATE_DIR": ""}, "N8NCTL_STATE_DIR=\nN8NCTL_PROJECT_DIR=/srv/p\n"),
    "relative state dir": ({}, "N8NCTL_STATE_DIR=var/state\n"),
    "state dir wins over project dir": ({"N8NCTL_PROJECT_DIR": "/srv/p"}, "N8NCTL_STATE_DIR=/srv/s\n"),
}


@pytest.mark.parametrize(("environ", "dotenv"), CASES.values(), ids=CASES.keys())
def test_state_dir_hint_is_the_settings_state_dir(project, monkeypatch, environ, dotenv):
    (project / ".env").write_text(dotenv)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert state_dir_hint(os.environ, project) == Settings().state_dir  # type: ignore[call-arg]
