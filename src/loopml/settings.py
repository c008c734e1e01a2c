"""Typed settings, read once from the environment. No other module reads `os.environ`.

| variable | meaning | default |
|---|---|---|
| LOOPML_HOME | folder of the embedded workspace | ./.loopml |
| LOOPML_DB_URL | metadata database URL, or memory:// | sqlite:///$LOOPML_HOME/loopml.db |
| LOOPML_ARTIFACTS | artifact root, any fsspec URL | $LOOPML_HOME/artifacts |
| LOOPML_PROJECT | project used when none is given | default |
| LOOPML_ACTOR | name recorded on events | the operating-system user |
| LOOPML_S3_ENDPOINT_URL | endpoint of an S3-compatible server | AWS |
| LOOPML_CACHE_DIR | local cache (file hashes, monitors' kept hours) | $LOOPML_HOME/cache |
| LOOPML_SERVER | a team server's URL: data, runs, models and the audit trail live there | none |
| LOOPML_TOKEN | the API token sent to LOOPML_SERVER | none |
| LOOPML_RUN_TIMEOUT_S | seconds without a heartbeat after which a run is marked killed | 600 |
| LOOPML_ALLOW_TARGETS | CIDRs (comma-separated) webhooks and probes may reach: see below | none |
| LOOPML_QUICK_READS | 0: read a local SQLite workspace through SQLAlchemy as well | 1 |
| LOOPML_LOG_RETAIN | how long a team server keeps the prediction log, e.g. 90d | forever |

LOOPML_ALLOW_TARGETS lets the requests loopml makes on its own (webhooks, Slack, health probes)
reach ranges that `loopml.domain.targets` refuses by their kind; `loopml server --allow-target`
adds to it. The SMTP server of LOOPML_SMTP_URL is the operator's own choice and is not checked.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.domain.targets import TargetPolicy


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    artifacts_url: str
    project: str = "default"
    actor: str = "unknown"
    cache_dir: Path = field(default_factory=lambda: Path(".loopml/cache"))
    storage_options: dict[str, Any] = field(default_factory=dict)
    smtp_url: str | None = None
    """`smtp://host:port` (or `smtps://`) that email alerts go through."""
    smtp_from: str = "loopml@localhost"
    webhook_secret: str | None = None
    """Key of the HMAC-SHA256 signature on webhook alerts (`X-Loopml-Signature`)."""
    server_url: str | None = None
    """A team server (`loopml server`) that holds the stores instead of this machine."""
    token: str | None = field(default=None, repr=False)
    run_timeout_s: float = 600.0
    """A running run whose process sent no heartbeat for this long is marked killed."""
    allowed_targets: tuple[str, ...] = ()
    """Address ranges (CIDR) that requests loopml makes on its own (webhooks, Slack, health
    probes) may reach whatever their kind: an admin's `loopml server --allow-target`."""
    guard_local_targets: bool = False
    """True on a team server: those requests may not reach loopback or private addresses
    either (a workspace on the user's own machine may). See `loopml.domain.targets`."""
    model_types: tuple[str, ...] | None = None
    """None: models load with the types their registrant recorded (a workspace of one's own).
    On a team server, the package prefixes whose classes a model it loads may be built from
    (`sklearn.` and each `loopml server --trust-model-type`)."""
    pipeline_roots: tuple[str, ...] | None = None
    """None: a retrain loop runs the pipeline it names, from anywhere. On a team server, the
    folders (`loopml server --pipelines DIR`) whose pipeline files its schedule may run; such a
    run never reads another run's cached step outputs."""
    log_retain_s: int | None = None
    """A team server's schedule removes prediction log hours older than this (None: never)."""
    quick_reads: bool = True
    """Read a local SQLite workspace at the current schema with the standard `sqlite3`, so a
    list or show command imports no SQLAlchemy (`loopml.adapters.sql.quick`); False reads it
    through SQLAlchemy, as every other database is (to compare the two paths)."""

    @property
    def embedded(self) -> bool:
        """True when both stores live in the local home folder."""
        return self.db_url.startswith("sqlite") and "://" not in self.artifacts_url

    def target_policy(self) -> TargetPolicy:
        """Where requests loopml makes on its own may go; InvalidInput for a malformed range."""
        from loopml.domain.targets import TargetPolicy, parse_networks

        return TargetPolicy(parse_networks(self.allowed_targets), not self.guard_local_targets)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("LOOPML_HOME") or (cwd or Path.cwd()) / ".loopml").absolute()
        options: dict[str, Any] = {}
        if env.get("LOOPML_S3_ENDPOINT_URL"):
            options["client_kwargs"] = {"endpoint_url": env["LOOPML_S3_ENDPOINT_URL"]}
        return cls(
            home=home,
            db_url=env.get("LOOPML_DB_URL") or f"sqlite:///{home / 'loopml.db'}",
            artifacts_url=env.get("LOOPML_ARTIFACTS") or str(home / "artifacts"),
            project=env.get("LOOPML_PROJECT") or "default",
            actor=env.get("LOOPML_ACTOR") or _os_user(),
            cache_dir=Path(env.get("LOOPML_CACHE_DIR") or home / "cache"),
            storage_options=options,
            smtp_url=env.get("LOOPML_SMTP_URL") or None,
            smtp_from=env.get("LOOPML_SMTP_FROM") or "loopml@localhost",
            webhook_secret=env.get("LOOPML_WEBHOOK_SECRET") or None,
            server_url=(env.get("LOOPML_SERVER") or "").rstrip("/") or None,
            token=env.get("LOOPML_TOKEN") or None,
            run_timeout_s=_seconds(env, "LOOPML_RUN_TIMEOUT_S", 600.0),
            allowed_targets=tuple(
                part.strip()
                for part in env.get("LOOPML_ALLOW_TARGETS", "").split(",")
                if part.strip()
            ),
            quick_reads=env.get("LOOPML_QUICK_READS", "1").strip() != "0",
            log_retain_s=_duration(env, "LOOPML_LOG_RETAIN"),
        )


def _duration(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name) or ""
    if not text.strip():
        return None
    from loopml.domain.durations import parse_duration
    from loopml.errors import InvalidInput

    try:
        return parse_duration(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{name}: {exc.message}", exc.hint) from None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name) or ""
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        from loopml.errors import InvalidInput

        raise InvalidInput(
            f"{name}={text!r} is not a number of seconds.", f"Set {name} to e.g. {default:g}."
        )
    return seconds


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
