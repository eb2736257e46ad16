"""The Prometheus alert rules rendered with every stack: promtool accepts them, and its rule unit
tests show each bridge alert firing on the series that should fire it, at the thresholds in settings,
and staying quiet below them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from n8nctl.render import render_monitoring, render_stack
from n8nctl.settings import Settings
from tests.harness import system_tool


def promtool() -> str:
    return system_tool(
        "promtool", installed_by="./scripts/test installs Debian's prometheus package with apt-get"
    )


def _rules(tmp_path: Path, *, prod: bool, **settings: object) -> Path:
    files = render_monitoring(Settings(_env_file=None, **settings), prod=prod)  # type: ignore[call-arg]
    path = tmp_path / "alerts.yml"
    path.write_text(files["prometheus/alerts.yml"])
    return path


@pytest.mark.parametrize("prod", [False, True], ids=["dev", "prod"])
def test_promtool_accepts_the_rendered_rules(tmp_path, prod):
    check = subprocess.run(
        [promtool(), "check", "rules", str(_rules(tmp_path, prod=prod))], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout


def _series(name: str, values: str) -> dict[str, str]:
    return {"series": name, "values": values}


def test_the_bridge_alerts_fire_at_the_thresholds_in_settings(tmp_path):
    rules = _rules(
        tmp_path,
        prod=True,
        n8nctl_alert_dead_letters=1,
        n8nctl_alert_callback_failure_rate=0.5,
        n8nctl_alert_queue_depth=3,
    )
    minute = "1m"
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": minute,
        "tests": [
            {
                "interval": minute,
                "input_series": [
                    # one dead letter is at the threshold (no alert), two are over it
                    _series('bridge_callbacks_dead{instance="b1"}', "1x10 2x10"),
                    # per minute: 1 delivered and 2 failed attempts (67% failed, over 50%)
                    _series('bridge_callback_attempts_total{outcome="delivered"}', "0+1x40"),
                    _series('bridge_callback_attempts_total{outcome="pending"}', "0+2x40"),
                    _series('bridge_jobs_active{instance="b1",status="pending"}', "3x40"),
                    _series('up{job="n8nctl-bridge",instance="b1"}', "1x3 0x10"),
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "BridgeDeadLetters", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "BridgeDeadLetters",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": _annotations(rules, "BridgeDeadLetters"),
                            }
                        ],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "BridgeCallbackFailureRateHigh",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": _annotations(rules, "BridgeCallbackFailureRateHigh"),
                            }
                        ],
                    },
                    {"eval_time": "30m", "alertname": "BridgeQueueDeep", "exp_alerts": []},  # 3 is not over 3
                    {
                        "eval_time": "8m",
                        "alertname": "BridgeDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "job": "n8nctl-bridge",
                                    "instance": "b1",
                                },
                                "exp_annotations": {
                                    "summary": "The bridge does not answer Prometheus (b1)",
                                    "runbook": "docs/RUNBOOK.md#bridgedown",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    run = subprocess.run([promtool(), "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _annotations(rules: Path, alert: str) -> dict[str, str]:
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                return dict(rule["annotations"])
    raise AssertionError(f"no rule {alert}")


def test_the_prod_stack_turns_n8n_metrics_on_for_the_n8n_rules():
    files = render_stack(Settings(_env_file=None), runtime="compose", prod=True)  # type: ignore[call-arg]
    n8n = yaml.safe_load(files["compose.prod.yaml"])["services"]["n8n"]["environment"]
    assert n8n["N8N_METRICS"] == "true"
