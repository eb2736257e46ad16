"""The only code that talks to S3 (boto3). `endpoint_url` is the seam: MinIO, R2, SeaweedFS and other
S3-compatible stores work the same, and the tests run a real one. Uploads are multipart above
MULTIPART_THRESHOLD and ask for server-side encryption; botocore's errors become N8nctlError that name
the bucket and key, never the credentials."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n8nctl.errors import N8nctlError, NotFoundError, UnreachableError
from n8nctl.settings import Settings

log = logging.getLogger(__name__)
MULTIPART_THRESHOLD = 64 << 20
MULTIPART_CHUNK = 64 << 20


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """`s3://bucket/prefix/...`."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"


@contextmanager
def _errors(what: str, where: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    fix = "Check N8NCTL_BACKUP_S3_* in .env (bucket, endpoint, access key) and that the store answers."
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise NotFoundError(what, why=f"{where} does not exist ({code})", fix=fix) from None
        raise N8nctlError(what, why=f"S3 answered {code} for {where}", fix=fix) from None
    except (EndpointConnectionError, NoCredentialsError) as exc:
        raise UnreachableError(what, why=f"{type(exc).__name__} for {where}", fix=fix) from None
    except BotoCoreError as exc:
        raise UnreachableError(what, why=f"{type(exc).__name__} for {where}", fix=fix) from None


class S3:
    def __init__(self, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.sse = settings.n8nctl_backup_s3_sse
        secret = settings.n8nctl_backup_s3_secret_access_key.get_secret_value()
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.n8nctl_backup_s3_endpoint_url or None,
            region_name=settings.n8nctl_backup_s3_region or None,
            aws_access_key_id=settings.n8nctl_backup_s3_access_key_id or None,
            aws_secret_access_key=secret or None,
            config=Config(
                connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )

    def upload(self, source: Path, location: S3Location, name: str) -> None:
        from boto3.s3.transfer import TransferConfig

        key = location.key(name)
        log.debug("s3 upload %s -> s3://%s/%s", source, location.bucket, key)
        extra = {} if self.sse == "none" else {"ServerSideEncryption": self.sse}
        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNK)
        with _errors(f"upload of {source.name} failed", f"s3://{location.bucket}/{key}"):
            self.client.upload_file(str(source), location.bucket, key, ExtraArgs=extra, Config=config)

    def download(self, location: S3Location, name: str, target: Path) -> None:
        key = location.key(name)
        log.debug("s3 download s3://%s/%s", location.bucket, key)
        with _errors(f"download of {name} failed", f"s3://{location.bucket}/{key}"):
            self.client.download_file(location.bucket, key, str(target))

    def read(self, location: S3Location, name: str) -> bytes:
        key = location.key(name)
        with _errors(f"reading {name} failed", f"s3://{location.bucket}/{key}"):
            return bytes(self.client.get_object(Bucket=location.bucket, Key=key)["Body"].read())

    def folders(self, location: S3Location) -> list[str]:
        """The names directly under the prefix that end in '/' (one per backup)."""
        names: list[str] = []
        prefix = location.key() + "/" if location.key() else ""
        with _errors("listing backups failed", f"s3://{location.bucket}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                names += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def delete(self, location: S3Location, name: str) -> None:
        key = location.key(name)
        with _errors(f"deleting {name} failed", f"s3://{location.bucket}/{key}"):
            self.client.delete_object(Bucket=location.bucket, Key=key)

    def delete_folder(self, location: S3Location, name: str) -> int:
        """Delete every object under <prefix>/<name>/; how many went."""
        prefix = location.key(name) + "/"
        deleted = 0
        with _errors(f"deleting {name} failed", f"s3://{location.bucket}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=location.bucket, Prefix=prefix
            )
            for page in pages:
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=location.bucket, Delete={"Objects": objects})
                    deleted += len(objects)
        return deleted
