"""Table definitions. The schema itself is owned by the Alembic migrations beside this module;
`tests/contract/test_migrations.py` proves the two agree.

Times are integer microseconds since the epoch (UTC): exact, portable and cheap to compare.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("created_us", BigInteger, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("latest_version", Integer, nullable=False),
    UniqueConstraint("project", "name", name="uq_datasets_project_name"),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("message", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("table_schema", JSON, nullable=True),
    Column("profile", JSON, nullable=True),
    UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),
    UniqueConstraint("dataset_id", "digest", name="uq_dataset_versions_dataset_digest"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("parent_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("environment", JSON, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=True),
    Index("ix_runs_project_start", "project", "start_us"),
    Index("ix_runs_parent", "parent_id"),
    Index("ix_runs_status_heartbeat", "status", "heartbeat_us"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Column("value_num", Float, nullable=True),
    Index("ix_params_key_num", "key", "value_num"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    # Also the history's index: an exact repeat of a point (a retried batch) is the same point.
    Index("uq_metrics_point", "run_id", "key", "step", "timestamp_ms", "value", unique=True),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("dataset_version_id", Integer, ForeignKey("dataset_versions.id"), primary_key=True),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("latest_version", Integer, nullable=False),
    UniqueConstraint("project", "name", name="uq_models_project_name"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("flavor", String(50), nullable=False),
    Column("flavor_info", JSON, nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("signature", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("time_us", BigInteger, nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity", String(500), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
    Index("ix_events_entity", "entity"),
    Index("ix_events_action", "action"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("serializer", String(30), nullable=False),
    Column("type_name", String(300), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

run_io = Table(
    "run_io",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("direction", String(3), primary_key=True),
    Column("name", String(250), primary_key=True),
    Column("artifact_digest", String(80), ForeignKey("artifacts.digest"), nullable=False),
    Index("ix_run_io_artifact", "artifact_digest", "direction"),
)

step_cache = Table(
    "step_cache",
    metadata,
    Column("project", String(200), ForeignKey("projects.name"), primary_key=True),
    Column("cache_key", String(80), primary_key=True),
    Column("step_name", String(250), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("model_ref", String(300), nullable=False),
    Column("shadow_ref", String(300), nullable=True),
    Column("canary_ref", String(300), nullable=True),
    Column("canary_percent", Float, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("project", "name", name="uq_deployments_project_name"),
)

monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("deployment", String(200), nullable=False),
    Column("reference", String(300), nullable=True),
    Column("summary_digest", String(80), nullable=True),
    Column("probe_url", String(500), nullable=True),
    Column("window_s", Integer, nullable=False),
    Column("every_s", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("project", "name", name="uq_monitors_project_name"),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("monitor", String(200), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("window_start_us", BigInteger, nullable=False),
    Column("window_end_us", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("drift_share", Float, nullable=False),
    Column("drifted_json", Text, nullable=False),
    Column("report_digest", String(80), nullable=False),
    Column("weighted_drift", Float, nullable=True),
    Index("ix_monitor_runs_project_monitor_time", "project", "monitor", "time_us"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("target", String(200), nullable=False),
    Column("condition", String(500), nullable=False),
    Column("channels_json", Text, nullable=False),
    Column("cooldown_s", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("resolve_after", Integer, nullable=False, server_default="1"),
    Column("resolve_margin", Float, nullable=False, server_default="0"),
    Index("ix_alert_rules_project_target", "project", "target"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("rule_id", Integer, nullable=False),
    Column("target", String(200), nullable=False),
    Column("condition", String(500), nullable=False),
    Column("state", String(20), nullable=False),
    Column("opened_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("resolved_us", BigInteger, nullable=True),
    Column("value", Float, nullable=True),
    Column("deliveries_json", Text, nullable=False),
    Index("ix_alerts_project_state", "project", "state"),
    Index("ix_alerts_rule", "rule_id"),
)

loops = Table(
    "loops",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("spec_json", Text, nullable=False),
    Column("state_json", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("project", "name", name="uq_loops_project_name"),
)

loop_runs = Table(
    "loop_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String(200), ForeignKey("projects.name"), nullable=False),
    Column("loop", String(200), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("trigger", String(500), nullable=False),
    Column("status", String(40), nullable=False),
    Column("details_json", Text, nullable=False),
    Index("ix_loop_runs_project_loop_started", "project", "loop", "started_us"),
)

users = Table(
    "users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("role", String(20), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("disabled_us", BigInteger, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(200), ForeignKey("users.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("hint", String(8), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
    UniqueConstraint("hash", name="uq_tokens_hash"),
)

grants = Table(
    "grants",
    metadata,
    Column("project", String(200), ForeignKey("projects.name"), primary_key=True),
    Column("user", String(200), ForeignKey("users.name"), primary_key=True),
    Column("role", String(20), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(420), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("until_us", BigInteger, nullable=False),
)

blob_refs = Table(
    "blob_refs",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("project", String(200), ForeignKey("projects.name"), primary_key=True),
)
"""Which projects hold each blob: the team server lets a blob be read only through one of them."""

blob_uploads = Table(
    "blob_uploads",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("user", String(200), primary_key=True),
    Column("time_us", BigInteger, nullable=False),
)
"""Blobs each user sent: theirs to read and to name in a record before any record names them."""

ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("token_id", Integer, ForeignKey("tokens.id"), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
)
"""Web UI sessions: the SHA-256 of the random id in the cookie, and the token it stands for."""
