"""Structure of the rendered compose stacks, their validity under the official Compose schema, and
the promise that no secret value is ever written into a rendered file."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from n8nctl.errors import ConfigError
from n8nctl.render import render_stack
from n8nctl.runtimes.n8n_npm import pinned_version
from n8nctl.settings import Settings
from tests.conftest import PROJECT
from tests.render.compose_checks import bind_sources, host_ip, merged
from tests.render.conftest import GOLDEN_PROJECT

SCHEMA = PROJECT.parent / "shared" / "reference" / "compose-spec.json"
N8N_SERVICES = ("n8n", "n8n-worker")


def stack(settings: Settings, prod: bool) -> dict:
    return merged(render_stack(settings, runtime="compose", prod=prod))


@pytest.mark.parametrize("prod", [False, True], ids=["dev", "prod"])
def test_every_published_port_binds_loopback_only(settings_of, prod):
    services = stack(settings_of(), prod)["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published["bridge"] and published["n8n"], "the bridge and n8n are published for the nginx"
    for name, ports in published.items():
        for port in ports:
            assert host_ip(port) == "127.0.0.1", f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("prod", [False, True], ids=["dev", "prod"])
def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(settings_of, prod):
    services = stack(settings_of(), prod)["services"]
    expected = {"bridge", "n8n", "postgres", "redis"} | ({"n8n-worker"} if prod else set())
    assert set(services) == expected
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    n8n_check = services["n8n"]["healthcheck"]["test"]
    assert n8n_check[:3] == ["CMD", "wget", "--spider"] and n8n_check[-1].endswith("/healthz")


def test_prod_limits_restarts_and_rotates_logs_of_every_service(settings_of):
    for name, service in stack(settings_of(), True)["services"].items():
        assert service["restart"] == "unless-stopped", name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[mg]", limits["memory"]), name
        assert service["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(service["logging"]["options"]), name


def test_prod_bind_mounts_only_the_shared_state_folder_while_dev_also_mounts_the_workflows(settings_of):
    settings = settings_of()
    dev, prod = stack(settings, False)["services"], stack(settings, True)["services"]
    state = str(settings.state_dir)
    assert state == "/srv/n8nctl/.n8nctl"
    assert bind_sources(dev["bridge"]) == [state, "../../workflows"]
    mounted = {name: bind_sources(service) for name, service in prod.items() if bind_sources(service)}
    assert mounted == {"bridge": [state]}, "prod mounts no dev folder"
    assert prod["bridge"]["user"].startswith("${N8NCTL_BRIDGE_USER:?")


def test_prod_n8n_is_hardened_and_runs_in_queue_mode(settings_of):
    services = stack(settings_of(nginx_editor_server_name="editor.flowbiz.test"), True)["services"]
    env = services["n8n"]["environment"]
    assert env["N8N_METRICS"] == "true" and env["N8N_PROXY_HOPS"] == "1"
    assert env["N8N_SECURE_COOKIE"] == "true"
    assert env["N8N_DIAGNOSTICS_ENABLED"] == "false" and env["N8N_VERSION_NOTIFICATIONS_ENABLED"] == "false"
    assert env["EXECUTIONS_DATA_PRUNE"] == "true"
    assert int(env["EXECUTIONS_DATA_MAX_AGE"]) > 0 and int(env["EXECUTIONS_DATA_PRUNE_MAX_COUNT"]) > 0
    assert env["N8N_EDITOR_BASE_URL"] == "https://editor.flowbiz.test/"
    for name in N8N_SERVICES:
        assert services[name]["environment"]["EXECUTIONS_MODE"] == "queue", name
        assert services[name]["environment"]["QUEUE_BULL_REDIS_HOST"] == "redis", name
        assert services[name]["environment"]["DB_TYPE"] == "postgresdb", name


def test_workers_scale_from_settings_and_share_the_encryption_key_variable(settings_of):
    services = stack(settings_of(n8nctl_workers=3, n8nctl_worker_concurrency=7), True)["services"]
    worker = services["n8n-worker"]
    assert worker["deploy"]["replicas"] == 3
    assert worker["command"] == ["worker", "--concurrency=7"]
    keys = {services[name]["environment"]["N8N_ENCRYPTION_KEY"] for name in N8N_SERVICES}
    assert len(keys) == 1, f"n8n and its workers read different keys: {keys}"
    (key,) = keys
    # from .env, required: compose refuses to start rather than let n8n generate a key inside a volume
    assert key.startswith("${N8N_ENCRYPTION_KEY:?")


def test_every_image_tag_comes_from_settings_and_n8n_matches_the_native_runtime(settings_of):
    settings = settings_of(postgres_image="postgres:16.9-alpine", redis_image="redis:7.4.5-alpine")
    services = stack(settings, True)["services"]
    assert services["n8n"]["image"] == services["n8n-worker"]["image"]
    assert services["n8n"]["image"] == f"docker.n8n.io/n8nio/n8n:{pinned_version()}"
    assert services["postgres"]["image"] == "postgres:16.9-alpine"
    assert services["redis"]["image"] == "redis:7.4.5-alpine"
    assert services["bridge"]["build"]["args"]["BASE_IMAGE"] == settings.bridge_base_image
    assert (PROJECT / services["bridge"]["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("prod", [False, True], ids=["dev", "prod"])
def test_rendered_compose_files_validate_against_the_compose_schema(settings_of, prod):
    if not SCHEMA.is_file():
        pytest.skip(f"NOT VALIDATED: the Compose schema is missing at {SCHEMA} (present in CI)")
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    files = render_stack(settings_of(n8nctl_workers=2), runtime="compose", prod=prod)
    for name in ("compose.yaml", "compose.prod.yaml")[: 2 if prod else 1]:
        errors = [
            f"{list(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(yaml.safe_load(files[name]))
        ]
        assert errors == [], f"{name}: {errors}"


def test_no_secret_value_is_written_into_any_rendered_file(settings_of):
    secrets = {name: f"s3cret-{name}-{i:02d}x" for i, name in enumerate(Settings.model_fields)}
    secret_fields = {
        name: value
        for name, value in secrets.items()
        if Settings.model_fields[name].annotation is not None
        and "SecretStr" in str(Settings.model_fields[name].annotation)
    }
    assert {"n8n_encryption_key", "postgres_password", "nginx_editor_password"} <= set(secret_fields)
    secret_fields["bridge_client_secrets"] = "flowbiz:whsec_c2VjcmV0LWNsaWVudA=="
    secret_fields["bridge_redis_url"] = "redis://:s3cret-bridge-redis-password@redis:6390/s3cret"
    settings = settings_of(**secret_fields)
    rendered = {
        **render_stack(settings, runtime="compose", prod=False),
        **{f"prod/{k}": v for k, v in render_stack(settings, runtime="compose", prod=True).items()},
        **{f"native/{k}": v for k, v in render_stack(settings, runtime="native", prod=False).items()},
    }
    for name, value in secret_fields.items():
        for path, text in rendered.items():
            assert value not in text, f"{name.upper()}'s value is in {path}"
            assert value.split(":")[-1] not in text, f"part of {name.upper()} is in {path}"


def test_prod_has_no_native_variant(settings_of):
    with pytest.raises(ConfigError, match="compose runtime only"):
        render_stack(settings_of(), runtime="native", prod=True)


def test_the_stack_name_names_the_compose_project_so_two_prod_stacks_can_share_an_engine(settings_of):
    default = yaml.safe_load(render_stack(settings_of(), runtime="compose", prod=True)["compose.yaml"])
    second = yaml.safe_load(
        render_stack(settings_of(n8nctl_stack="second"), runtime="compose", prod=True)["compose.yaml"]
    )
    assert (default["name"], second["name"]) == ("n8nctl-prod", "n8nctl-second")
    dev = yaml.safe_load(render_stack(settings_of(), runtime="compose", prod=False)["compose.yaml"])
    assert dev["name"] == "n8nctl-dev"
    assert settings_of(n8nctl_stack="second").stack_dir("second") == GOLDEN_PROJECT / "stacks" / "second"
