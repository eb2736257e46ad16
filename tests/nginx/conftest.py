"""A real nginx (the Debian package `./scripts/test` installs) running the rendered site config on
free loopback ports, with its own prefix, pid, logs and temp folders: never the system service.
Behind it: the real bridge (`n8nctl bridge serve`) and, for the editor, a small HTTP + WebSocket
server standing in for n8n (n8n itself runs in tests/e2e)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from n8nctl.envfile import write_htpasswd
from n8nctl.render import nginx_context, render_nginx
from n8nctl.settings import Settings
from n8nctl.signing import generate_secret
from tests.conftest import PROJECT
from tests.harness import ServerThread, Service, bridge_service, clean_env, free_port, system_tool, wait_until

EDITOR_PASSWORD = "Editor-pass-7f3a"  # a throwaway test credential


def nginx_binary() -> str:
    return system_tool(
        "nginx",
        also=("/usr/sbin/nginx", "/usr/local/sbin/nginx"),
        installed_by="./scripts/test installs it with apt-get",
    )


class EditorStandIn(ServerThread):
    """Stands in for n8n behind the editor server: records each path it serves, echoes the forwarded
    headers, and echoes WebSocket messages on /rest/push."""

    def __init__(self, port: int) -> None:
        routes = [
            WebSocketRoute("/rest/push", self._push),
            Route("/{path:path}", self._page, methods=["GET", "POST"]),
        ]
        super().__init__(Starlette(routes=routes), port)
        self.paths: list[str] = []

    async def _page(self, request: Request) -> JSONResponse:
        self.paths.append(request.url.path)
        return JSONResponse({"editor": True, "headers": dict(request.headers)})

    async def _push(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("echo:" + await websocket.receive_text())
        await websocket.close()

    def __enter__(self) -> EditorStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Edge:
    folder: Path
    https: str
    http: str
    tls: ssl.SSLContext
    ca: Path
    editor: EditorStandIn
    settings: Settings
    conf: Path
    nginx: str

    def log(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in self.folder.glob("*.log")
        )


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "edge.crt", folder / "edge.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=bridge.test", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:bridge.test,DNS:editor.test,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def main_conf(folder: Path, site: Path) -> Path:
    """The nginx.conf around the site file, as /etc/nginx/nginx.conf would be, but all in `folder`."""
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(
        # as root, nginx's workers would otherwise switch to `nobody`, who cannot read pytest's tmp folders
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""
    )
    return conf


@pytest.fixture(scope="session")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    project = tmp_path_factory.mktemp("edge-project")
    (project / "workflows").mkdir()
    shutil.copy(PROJECT / "workflows" / "registry.json", project / "workflows" / "registry.json")
    port = free_port()
    env = {
        **clean_env(),
        "N8NCTL_PROJECT_DIR": str(project),
        "N8NCTL_STATE_DIR": str(project / "state"),
        "BRIDGE_CLIENT_SECRETS": f"flowbiz:{generate_secret()}",
        "N8N_BASE_URL": f"http://127.0.0.1:{free_port()}",  # no n8n: the bridge stays healthy anyway
    }
    service = bridge_service(env, project, port)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def edge(bridge: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    nginx = nginx_binary()
    folder = tmp_path_factory.mktemp("edge")
    cert, key = self_signed(folder)
    https, http = free_port(), free_port()
    with EditorStandIn(free_port()) as editor:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            n8nctl_project_dir=PROJECT,
            n8nctl_state_dir=folder,
            bridge_port=int(bridge.health.rsplit(":", 1)[1].split("/")[0]),
            n8n_port=editor.port,
            nginx_server_name="bridge.test",
            nginx_editor_server_name="editor.test",
            nginx_listen=f"127.0.0.1:{https}",
            nginx_http_listen=f"127.0.0.1:{http}",
            nginx_tls_certificate=str(cert),
            nginx_tls_certificate_key=str(key),
            nginx_editor_allow="127.0.0.1/32",
            nginx_rate_limit="5r/s",
            nginx_rate_burst=5,
        )
        write_htpasswd(settings.htpasswd_file, settings.nginx_editor_user, EDITOR_PASSWORD)
        site = folder / "n8nctl.conf"
        site.write_text(render_nginx(nginx_context(settings, prod=True)))
        conf = main_conf(folder, site)
        tls = ssl.create_default_context(cafile=str(cert))
        edge = Edge(folder, f"https://127.0.0.1:{https}", f"http://127.0.0.1:{http}", tls, cert, editor,
                    settings, conf, nginx)  # fmt: skip
        process = subprocess.Popen(
            [nginx, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            import httpx

            def serving() -> bool:
                assert process.poll() is None, f"nginx exited with {process.returncode}:\n{edge.log()}"
                try:
                    url = f"{edge.https}/healthz"
                    return httpx.get(url, headers={"host": "bridge.test"}, verify=tls).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(serving, 20, "nginx in front of the bridge")
            yield edge
        finally:
            process.terminate()
            process.wait(timeout=10)
