"""Workflow templates <-> n8n: import (create or update by registry key), export, list, diff.

Templates in workflows/templates/ are n8n workflow JSON in a normal form: only name, nodes,
connections and settings; nodes sorted by name, without instance ids; credentials referenced by name.
Export writes that same form, so a workflow nobody changed exports byte-identical.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n8nctl.adapters.n8n_api import N8nApi
from n8nctl.errors import ConfigError, N8nctlError, NotFoundError
from n8nctl.registry import Registry
from n8nctl.settings import Settings
from n8nctl.wait import until

NODE_KEYS = (
    "name",
    "type",
    "typeVersion",
    "position",
    "parameters",
    "credentials",
    "webhookId",
    "disabled",
    "notes",
    "notesInFlow",
    "onError",
    "retryOnFail",
    "maxTries",
    "waitBetweenTries",
    "alwaysOutputData",
    "executeOnce",
)


def normalize(workflow: dict[str, Any]) -> dict[str, Any]:
    """The instance-independent form of a workflow (see the module docstring)."""
    nodes = []
    for node in sorted(workflow["nodes"], key=lambda n: n["name"]):
        kept = {key: node[key] for key in NODE_KEYS if key in node}
        if "credentials" in kept:
            kept["credentials"] = {
                kind: {"name": ref["name"]} for kind, ref in sorted(kept["credentials"].items())
            }
        nodes.append(kept)
    return {
        "name": workflow["name"],
        "nodes": nodes,
        "connections": workflow.get("connections", {}),
        "settings": workflow.get("settings") or {},
    }


def dumps(workflow: dict[str, Any]) -> str:
    return json.dumps(normalize(workflow), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def with_credential_ids(workflow: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A copy whose credential references carry this instance's ids, resolved by name."""
    body = normalize(workflow)
    for node in body["nodes"]:
        for ref in node.get("credentials", {}).values():
            if ref["name"] not in ids:
                raise ConfigError(
                    f"workflow {body['name']!r} uses the credential {ref['name']!r}",
                    why="n8n has no credential of that name",
                    fix="Templates may only use the credentials n8nctl bootstrap creates.",
                )
            ref["id"] = ids[ref["name"]]
    return body


@dataclass(frozen=True)
class Outcome:
    workflow_key: str
    workflow_id: str
    result: str  # created | updated | unchanged
    active: bool
    activation: str  # activated | deactivated | unchanged


class WorkflowSync:
    def __init__(self, settings: Settings, registry: Registry, api: N8nApi) -> None:
        self.settings, self.registry, self.api = settings, registry, api
        self.templates_dir = settings.registry_path.parent
        self._state_file = settings.state_dir / "n8n-workflows.json"

    def _ids(self) -> dict[str, str]:
        return json.loads(self._state_file.read_text()) if self._state_file.exists() else {}

    def _remember(self, ids: dict[str, str]) -> None:
        self._state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")

    def template(self, key: str) -> dict[str, Any]:
        path = self.templates_dir / self.registry.entry(key).template
        try:
            return normalize(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ConfigError(
                f"template {path} for {key} not found", fix="Fix 'template' in the registry."
            ) from None

    def instance(self, key: str) -> dict[str, Any] | None:
        """The workflow in n8n for `key`: by the remembered id, else by name."""
        workflow_id = self._ids().get(key)
        found = self.api.workflow(workflow_id) if workflow_id else None
        if found is None:
            name = self.template(key)["name"]
            match = [w for w in self.api.workflows() if w["name"] == name]
            found = self.api.workflow(match[0]["id"]) if match else None
        return found

    def imported(self, key: str) -> dict[str, Any]:
        """The workflow in n8n for `key`; NotFoundError when it was never imported."""
        instance = self.instance(key)
        if instance is None:
            raise NotFoundError(
                f"workflow {key} is not in n8n", fix="Import it first: n8nctl workflows import."
            )
        return instance

    def import_all(self, credential_ids: dict[str, str], keys: list[str] | None = None) -> list[Outcome]:
        ids, outcomes = self._ids(), []
        for key in keys or list(self.registry.workflows):
            entry = self.registry.entry(key)
            template = self.template(key)
            existing = self.instance(key)
            if existing is None:
                existing = self.api.create_workflow(with_credential_ids(template, credential_ids))
                result = "created"
            elif normalize(existing) != template:
                existing = self.api.update_workflow(
                    existing["id"], with_credential_ids(template, credential_ids)
                )
                result = "updated"
            else:
                result = "unchanged"
            ids[key] = existing["id"]
            self._remember(ids)
            activation = "unchanged"
            if bool(existing.get("active")) != entry.enabled:
                self.api.set_active(existing["id"], active=entry.enabled)
                activation = "activated" if entry.enabled else "deactivated"
            self.wait_for_webhook(key, registered=entry.enabled)
            outcomes.append(Outcome(key, existing["id"], result, entry.enabled, activation))
        return outcomes

    def wait_for_webhook(self, key: str, *, registered: bool, timeout: float = 15.0) -> None:
        """n8n registers a webhook shortly after activation returns; a job sent before would get 404."""
        path = self.registry.entry(key).webhook_path
        if not until(lambda: self.api.webhook_registered(path) == registered, timeout, interval=0.2):
            state = "registered" if registered else "unregistered"
            raise N8nctlError(
                f"n8n's webhook {path} for {key} is not {state} after {timeout:.0f} s",
                fix="See n8nctl logs n8n; then n8nctl workflows import again.",
            )

    def export_all(self, dest: Path | None = None) -> list[Path]:
        written = []
        for key, entry in self.registry.workflows.items():
            instance = self.imported(key)
            path = (dest / Path(entry.template).name) if dest else self.templates_dir / entry.template
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(dumps(instance))
            os.replace(temporary, path)
            written.append(path)
        return written

    def diff(self, key: str) -> str:
        instance = self.instance(key)
        theirs = dumps(instance).splitlines(keepends=True) if instance else []
        mine = dumps(self.template(key)).splitlines(keepends=True)
        return "".join(difflib.unified_diff(mine, theirs, f"template/{key}", f"n8n/{key}"))

    def listing(self) -> list[dict[str, Any]]:
        rows = []
        for key in self.registry.workflows:
            instance = self.instance(key)
            last = self.api.last_execution(instance["id"]) if instance else None
            rows.append(
                {
                    "workflow_key": key,
                    "n8n_id": instance["id"] if instance else None,
                    "active": bool(instance and instance.get("active")),
                    "last_execution": last["id"] if last else None,
                    "last_status": last.get("status") if last else None,
                    "last_started_at": last.get("startedAt") if last else None,
                }
            )
        return rows

    def set_active(self, key: str, *, active: bool) -> str:
        instance = self.imported(key)
        self.api.set_active(instance["id"], active=active)
        self.wait_for_webhook(key, registered=active)
        return str(instance["id"])
