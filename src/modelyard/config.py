"""Server settings: where data lives, which credentials are accepted, which region we claim.

Values come from command-line flags first, then ``MODELYARD_*`` environment variables,
then defaults. Credentials and the account id are generated on first start and kept in
the data directory, so a restarted server accepts the same keys.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8600
DEFAULT_REGION = "us-east-1"
IDENTITY_FILE = "identity.json"

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    generated: bool = False  # True when created on this start (so the CLI prints them)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    database_url: str | None = None
    account_id: str = ""
    credentials: Credentials = field(default_factory=lambda: Credentials("", ""))
    # Bounds on what one request may carry: API calls are small, objects may be large.
    max_api_request_bytes: int = 16 * MiB
    max_object_bytes: int = 5 * GiB
    # Allowed difference between a request's X-Amz-Date and the server clock.
    max_clock_skew_seconds: int = 15 * 60
    # Jobs running at once; more wait in a queue. Each job also gets at most its
    # instance type's vCPUs, capped by this machine's cores.
    max_concurrent_jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Each job's memory limit (cgroups, engine/cgroups.py): None = its instance type's
    # memory, 0 = no limit; MODELYARD_JOB_MEMORY_LIMIT ("off", "512MiB", "2GiB", bytes).
    job_memory_limit_bytes: int | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'metadata.sqlite3'}"

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{self.account_id}:{resource}"


def load_settings(
    *,
    data_dir: str | os.PathLike | None = None,
    host: str | None = None,
    port: int | None = None,
    region: str | None = None,
    database_url: str | None = None,
) -> Settings:
    """Build the settings from flags and environment, creating the data dir if needed."""
    env = os.environ
    directory = Path(data_dir or env.get("MODELYARD_DATA_DIR") or Path.home() / ".modelyard")
    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    identity = _load_or_create_identity(directory)
    return Settings(
        data_dir=directory,
        host=host or env.get("MODELYARD_HOST") or "127.0.0.1",
        port=int(port or env.get("MODELYARD_PORT") or DEFAULT_PORT),
        region=region or env.get("MODELYARD_REGION") or DEFAULT_REGION,
        database_url=database_url or env.get("MODELYARD_DATABASE_URL") or None,
        account_id=_account_id(env.get("MODELYARD_ACCOUNT_ID"), identity),
        credentials=_resolve_credentials(directory, identity),
        max_concurrent_jobs=int(env.get("MODELYARD_MAX_CONCURRENT_JOBS") or os.cpu_count() or 1),
        job_memory_limit_bytes=_memory_limit(env.get("MODELYARD_JOB_MEMORY_LIMIT")),
    )


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": MiB, "mib": MiB,
               "mb": 1000 ** 2, "g": GiB, "gib": GiB, "gb": 1000 ** 3}


def _memory_limit(configured: str | None) -> int | None:
    """MODELYARD_JOB_MEMORY_LIMIT: unset/"instance" -> None, "off" -> 0, else a size."""
    text = (configured or "instance").strip().lower()
    if text == "instance":
        return None
    if text in ("off", "none", "0"):
        return 0
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = text[len(number):].strip() if number else ""
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except (ValueError, KeyError):
        size = 0
    if size < 16 * MiB:
        raise SystemExit(
            f"MODELYARD_JOB_MEMORY_LIMIT must be 'instance' (the instance type's memory, the "
            f"default), 'off', or a size of at least 16MiB such as 512MiB or 2GiB; got "
            f"{configured!r}."
        )
    return size


def _account_id(configured: str | None, identity: dict) -> str:
    """``MODELYARD_ACCOUNT_ID`` (an account id the team's code hard-codes), else the
    data directory's own."""
    if not configured:
        return identity["account_id"]
    if len(configured) != 12 or not (configured.isascii() and configured.isdigit()):
        raise SystemExit(
            f"MODELYARD_ACCOUNT_ID must be an AWS account id, 12 digits (e.g. 123456789012); "
            f"got {configured!r}."
        )
    return configured


def _resolve_credentials(directory: Path, identity: dict) -> Credentials:
    access_key = os.environ.get("MODELYARD_ACCESS_KEY_ID")
    secret_key = os.environ.get("MODELYARD_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        return Credentials(access_key, secret_key)
    if access_key or secret_key:
        raise SystemExit(
            "Set both MODELYARD_ACCESS_KEY_ID and MODELYARD_SECRET_ACCESS_KEY, or neither "
            "(then modelyard generates a pair and keeps it in the data directory)."
        )
    return Credentials(
        identity["access_key_id"], identity["secret_access_key"], identity.get("generated", False)
    )


def _load_or_create_identity(directory: Path) -> dict:
    path = directory / IDENTITY_FILE
    if path.exists():
        return json.loads(path.read_text())
    identity = {
        "account_id": "".join(secrets.choice(string.digits[1:]) for _ in range(12)),
        "access_key_id": "AKIA" + "".join(
            secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)
        ),
        "secret_access_key": secrets.token_urlsafe(30)[:40],
    }
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identity, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return {**identity, "generated": True}
