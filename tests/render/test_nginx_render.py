"""The nginx site config as text: what the real-nginx tests in tests/nginx cannot see from outside."""

from __future__ import annotations

import re

import pytest

from n8nctl.errors import ConfigError
from n8nctl.render import nginx_context, render_nginx
from n8nctl.settings import load_settings


def test_the_public_server_has_only_v1_and_healthz_locations(settings_of):
    text = render_nginx(nginx_context(settings_of(), prod=True))
    public = text.split("server {")[2]
    assert re.findall(r"location (\S+ ?\S*) \{", public) == ["/v1/", "= /healthz", "/"]
    assert "return 404;" in public.split("location / {")[1]


def test_tls_paths_default_to_certbots_and_follow_settings(settings_of):
    default = nginx_context(settings_of(nginx_server_name="api.flowbiz.io"), prod=True)
    assert default["certificate"] == "/etc/letsencrypt/live/api.flowbiz.io/fullchain.pem"
    assert default["certificate_key"] == "/etc/letsencrypt/live/api.flowbiz.io/privkey.pem"
    chosen = settings_of(nginx_tls_certificate="/etc/ssl/a.pem", nginx_tls_certificate_key="/etc/ssl/a.key")
    text = render_nginx(nginx_context(chosen, prod=True))
    assert text.count("ssl_certificate /etc/ssl/a.pem;") == 2
    assert text.count("ssl_certificate_key /etc/ssl/a.key;") == 2


def test_editor_allow_list_renders_one_allow_per_cidr_before_deny_all(settings_of):
    text = render_nginx(
        nginx_context(settings_of(nginx_editor_allow="10.8.0.0/24, 192.168.7.5/32"), prod=True)
    )
    assert "allow 10.8.0.0/24;\n    allow 192.168.7.5/32;\n    deny all;" in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NGINX_SERVER_NAME", "bridge.test; include /etc/passwd"),
        ("NGINX_LISTEN", "443 ssl; return 200"),
        ("NGINX_EDITOR_ALLOW", "10.0.0.0/8; allow all"),
        ("NGINX_EDITOR_ALLOW", "10.0.0.1/8"),
        ("NGINX_TLS_CERTIFICATE", "/x.pem}"),
        ("POSTGRES_IMAGE", "postgres:16\n    privileged: true"),
        ("NGINX_RATE_LIMIT", "10 r/s"),
    ],
)
def test_a_setting_cannot_inject_into_rendered_files(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(_env_file=None)
