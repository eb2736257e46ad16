from __future__ import annotations

import time

from click.testing import CliRunner

from n8nctl.cli.main import cli


def invoke(project, *args: str):
    return CliRunner().invoke(cli, ["render", *args], env={"N8NCTL_PROJECT_DIR": str(project)})


def test_render_writes_the_stack_then_check_passes(tmp_path):
    started = time.perf_counter()
    result = invoke(tmp_path, "--prod")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    folder = tmp_path / "stacks" / "prod"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "alerts.yml",
        "compose.prod.yaml",
        "compose.yaml",
        "n8nctl.conf",
    ]
    assert result.output.count(": written") == 4
    again = invoke(tmp_path, "--prod")
    assert again.exit_code == 0 and again.output.count(": unchanged") == 4, again.output
    check = invoke(tmp_path, "--prod", "--check")
    assert check.exit_code == 0, check.output
    assert "up to date" in check.output
    assert elapsed < 2.0, f"render took {elapsed:.2f} s"


def test_check_exits_1_with_a_diff_when_a_rendered_file_was_edited(tmp_path):
    assert invoke(tmp_path).exit_code == 0
    compose = tmp_path / "stacks" / "dev" / "compose.yaml"
    compose.write_text(compose.read_text().replace('"127.0.0.1:8000:8000"', '"0.0.0.0:8000:8000"'))
    result = invoke(tmp_path, "--check")
    assert result.exit_code == 1, result.output
    assert '-      - "0.0.0.0:8000:8000"' in result.output
    assert '+      - "127.0.0.1:8000:8000"' in result.output
    assert "differs from a fresh render" in result.output
    assert "0.0.0.0" in compose.read_text(), "--check must not write"


def test_check_reports_a_missing_file(tmp_path):
    result = invoke(tmp_path, "--prod", "--check")
    assert result.exit_code == 1
    assert "(missing)" in result.output


def test_native_runtime_renders_supervisord_and_refuses_prod(tmp_path):
    result = invoke(tmp_path, "--runtime", "native")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "stacks" / "dev" / "supervisord.conf").is_file()
    refused = invoke(tmp_path, "--runtime", "native", "--prod")
    assert refused.exit_code == 2
    assert "compose runtime only" in refused.output


def test_check_finds_hand_edited_alert_rules(tmp_path):
    assert invoke(tmp_path, "--prod").exit_code == 0
    alerts = tmp_path / "stacks" / "prod" / "prometheus" / "alerts.yml"
    alerts.write_text(alerts.read_text().replace("> 0\n", "> 5\n"))
    edited = invoke(tmp_path, "--prod", "--check")
    assert edited.exit_code == 1 and "alerts.yml" in edited.output
