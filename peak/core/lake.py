"""The lake: one interface over a local folder and an ``s3://bucket/prefix``.

Every stage reads and writes the lake through :class:`Lake` with keys relative to the root
(``raw/members/ingest_date=2026-11-25/<sha>.csv``). Writes become visible atomically: locally a
temporary file in the same folder is renamed over the target; on S3 a single PUT (or a server-side
copy) is atomic per object. The keys themselves are defined once, in :mod:`peak.core.layout`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from peak.core.errors import LakeError

_CLIENT_LOCK = threading.Lock()


@contextmanager
def _removed_on_error(tmp: Path) -> Iterator[None]:
    """Remove the temporary file of an atomic write when the write fails (a full disk, a
    permission error), so no hidden ``.<name>.tmp-<hex>`` stays in the lake; re-raise."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Lake:
    """A lake root: ``/path/to/lake`` or ``s3://bucket/prefix``."""

    root: str
    boto3_session: Any = None

    @classmethod
    def from_uri(cls, uri: str, boto3_session: Any = None) -> Lake:
        if uri.startswith("s3://"):
            parsed = urlparse(uri)
            if not parsed.netloc:
                raise LakeError(f"lake URI {uri!r} has no bucket")
            return cls(uri.rstrip("/"), boto3_session)
        if "://" in uri:
            raise LakeError(f"lake URI {uri!r}: only local paths and s3:// are supported")
        return cls(str(Path(uri).expanduser().resolve()), boto3_session)

    # -- addressing ---------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return not self.root.startswith("s3://")

    @property
    def bucket(self) -> str:
        return urlparse(self.root).netloc

    @property
    def prefix(self) -> str:
        path = urlparse(self.root).path.strip("/")
        return f"{path}/" if path else ""

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    def path(self, key: str) -> Path:
        """The local path of a key (local lakes only)."""
        if not self.is_local:
            raise LakeError(f"{self.root} is not a local lake")
        return Path(self.root) / key

    def _s3(self) -> Any:
        import boto3

        with _CLIENT_LOCK:  # boto3 sessions are not thread-safe; the clients they make are
            session = self.boto3_session or boto3.session.Session()
            return session.client("s3")

    # -- reading ------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        if self.is_local:
            return self.path(key).exists()
        from botocore.exceptions import ClientError

        try:
            self._s3().head_object(Bucket=self.bucket, Key=self.prefix + key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def read_bytes(self, key: str) -> bytes:
        if self.is_local:
            return self.path(key).read_bytes()
        obj = self._s3().get_object(Bucket=self.bucket, Key=self.prefix + key)
        data: bytes = obj["Body"].read()
        return data

    def read_json(self, key: str, default: Any = None) -> Any:
        if not self.exists(key):
            return default
        return json.loads(self.read_bytes(key))

    def list(self, prefix: str) -> list[str]:
        """Every key under a prefix (recursive), sorted; temporary files are never listed."""
        if self.is_local:
            base = self.path(prefix.rstrip("/")) if prefix else Path(self.root)
            if not base.exists():
                return []
            if base.is_file():
                return [prefix]
            out = []
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    if not name.startswith("."):
                        full = Path(dirpath) / name
                        out.append(full.relative_to(self.root).as_posix())
            return sorted(out)
        paginator = self._s3().get_paginator("list_objects_v2")
        out = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                if not key.rsplit("/", 1)[-1].startswith("."):
                    out.append(key)
        return sorted(out)

    def download(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            shutil.copyfile(self.path(key), dest)
        else:
            self._s3().download_file(self.bucket, self.prefix + key, str(dest))
        return dest

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local path holding the key's bytes: the file itself on a local lake."""
        if self.is_local:
            yield self.path(key)
            return
        with tempfile.TemporaryDirectory(prefix="peak-") as tmp:
            yield self.download(key, Path(tmp) / key.rsplit("/", 1)[-1])

    # -- writing (atomic) ---------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        if self.is_local:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
            with _removed_on_error(tmp):  # a full disk must not leave a hidden part-file
                tmp.write_bytes(data)
                os.replace(tmp, target)
        else:
            self._s3().put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist: False when it does (an atomic test-and-set:
        ``O_EXCL`` locally, a conditional PUT with ``If-None-Match: *`` on S3)."""
        if self.is_local:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        from botocore.exceptions import ClientError

        try:
            self._s3().put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise
        return True

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def put_file(self, src: Path, key: str, *, move: bool = False) -> None:
        """Publish a local file under a key, atomically (``move`` consumes the source)."""
        if self.is_local:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
            with _removed_on_error(tmp):
                if move:
                    try:
                        os.replace(src, tmp)
                    except OSError:  # another file system
                        shutil.copyfile(src, tmp)
                        src.unlink()
                else:
                    shutil.copyfile(src, tmp)
                os.replace(tmp, target)
        else:
            self._s3().upload_file(str(src), self.bucket, self.prefix + key)
            if move:
                src.unlink()

    def move(self, src_key: str, dst_key: str) -> None:
        """Replace ``dst_key`` with ``src_key``'s object, atomically for readers of ``dst_key``."""
        if self.is_local:
            self.put_file(self.path(src_key), dst_key, move=True)
        else:
            s3 = self._s3()
            s3.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + dst_key,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + src_key},
            )
            s3.delete_object(Bucket=self.bucket, Key=self.prefix + src_key)

    def delete(self, key: str) -> None:
        if self.is_local:
            self.path(key).unlink(missing_ok=True)
            _prune_empty_dirs(self.path(key).parent, Path(self.root))
        else:
            self._s3().delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        if self.is_local:
            base = self.path(prefix.rstrip("/"))
            if base.is_dir():
                shutil.rmtree(base)
            return len(keys)
        s3 = self._s3()
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.prefix + k} for k in chunk], "Quiet": True},
            )
        return len(keys)


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
