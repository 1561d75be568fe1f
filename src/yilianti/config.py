"""One Settings object; every knob has a default that works for the demo (CONTRACTS.md)."""

from __future__ import annotations

import os
import secrets
import warnings
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Referral step deadlines: how long the step that follows entering a status may take, by priority
# (referral/states.py's step_deadline; YILIANTI_REFERRAL_STEP_DEADLINES overrides them per status and priority).
_H = timedelta(hours=1)
REFERRAL_STEP_DEADLINES: dict[str, dict[str, timedelta]] = {
    "submitted": {"routine": 4 * _H, "urgent": 1 * _H, "emergency": timedelta(minutes=30)},  # to be received
    "received": {"routine": 24 * _H, "urgent": 4 * _H, "emergency": timedelta(minutes=30)},  # to be decided
    "accepted": {"routine": 72 * _H, "urgent": 24 * _H, "emergency": 2 * _H},  # to be scheduled
    "scheduled": {"routine": 14 * 24 * _H, "urgent": 3 * 24 * _H, "emergency": 6 * _H},  # to arrive
    "arrived": {"routine": 7 * 24 * _H, "urgent": 3 * 24 * _H, "emergency": 2 * 24 * _H},  # outcome back
    "outcome_returned": {"routine": 3 * 24 * _H, "urgent": 3 * 24 * _H, "emergency": 3 * 24 * _H},  # closed
    "returned": {"routine": 3 * 24 * _H, "urgent": 24 * _H, "emergency": 2 * _H},  # advice acknowledged
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YILIANTI_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    # web server processes of `yilianti serve` / `yilianti demo`: more than 1 binds one SO_REUSEPORT
    # socket per process, so the kernel spreads connections evenly (a shared socket does not)
    web_processes: int = Field(default=1, ge=1, le=64)
    access_log: bool = True  # one log line per request (off behind a proxy that logs, or when benchmarking)
    database_url: str = "sqlite:///./var/yilianti.db"
    test_database_url: str | None = None
    secret_key: str | None = None
    data_keys: str | None = None
    index_key: str | None = None  # blind-index HMAC key (exact search on encrypted fields)
    # algorithms of field encryption, blind index and audit chain: standard = AES (Fernet) / HMAC-SHA256 / SHA-256,
    # sm = the Chinese commercial ones (GB/T 39786): SM4-GCM / HMAC-SM3 / SM3 (kit/crypto.py; `keys rotate` migrates)
    crypto_suite: Literal["standard", "sm"] = "standard"
    # the audit hash chain (audit/chain.py): its head is also appended here, outside the database: a file
    # (empty = var_dir/audit-head.log) or "syslog"; links are sealed by the job runner this often
    audit_head: str = ""
    audit_seal_seconds: float = 1.0
    var_dir: Path = Path("./var")
    production: bool = False
    # the OHIF viewer's files, installed by `make ohif` (diagnostics/dicomweb/ohif.py) and served at /ohif/ when present
    ohif_dir: Path = Path("./var/ohif")

    dicom_port: int = 11112
    dicom_ae_title: str = "YILIANTI"
    dicom_allowed_aes: str = ""
    hl7_port: int = 2575
    # on PostgreSQL: the lean ingest path (diagnostics/receivers/hl7_fast.py), its receiver processes sharing the
    # port (SO_REUSEPORT) and asyncpg writer connections per process (batched commits)
    hl7_fast_path: bool = True
    hl7_processes: int = 1
    hl7_writers: int = 4
    # an MLLP connection with no byte for this long between messages (idle, or half-open) is closed; so is one
    # whose frame has not ended this long after its first byte
    hl7_idle_timeout: float = Field(default=600.0, gt=0)
    hl7_frame_timeout: float = Field(default=30.0, gt=0)
    # character set of senders that leave MSH-18 empty, by MSH-3 sending application and/or MSH-4 facility, e.g.
    # YILIANTI_HL7_CHARSETS='{"LIS@渠口镇卫生院": "GB18030", "ECG": "GBK", "*": "UNICODE UTF-8"}' (others: UTF-8);
    # checked when the receivers start (diagnostics/receivers/mllp.SenderCharsets)
    hl7_charsets: dict[str, str] = Field(default_factory=dict)
    # Orthanc as the PACS behind the embedded store: received instances are POSTed to its REST API
    # (empty = embedded store only); the public URL is what browsers are linked to, if different
    orthanc_url: str = ""
    orthanc_public_url: str = ""
    orthanc_username: str = ""
    orthanc_password: str = ""
    # diagnostics: an unacknowledged critical value (危急值) goes to the department head after this
    critical_value_escalate_minutes: int = 10
    # how often an open page asks for the workbench counts, the 通知 badge and the critical-value banner
    poll_seconds: int = Field(default=30, ge=5, le=3600)

    # authentication
    session_max_age_hours: int = 12
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    password_min_length: int = 8
    # "standard" = pwdlib's recommended argon2 (about a second per hash on a small server). "minimal" is
    # for the test harness only (argon2 at its lowest cost, so thousands of demo/test users hash fast);
    # it is refused when production is set. Stored hashes of either kind always verify.
    password_hash_cost: Literal["standard", "minimal"] = "standard"

    # authorization
    break_glass_hours: int = 4
    grant_default_days: int = 30

    # FHIR bulk export: a finished export's files are removed this long after it finished (its manifest's Expires)
    fhir_export_hours: int = Field(default=24, ge=1, le=24 * 30)

    # chronic care follow-ups (国家基本公共卫生服务规范 第三版: ≥ 4 a year; re-check within 2 weeks)
    chronic_routine_days: int = Field(default=90, ge=1, le=366)
    chronic_recheck_days: int = Field(default=14, ge=1, le=90)
    chronic_first_follow_up_days: int = Field(default=14, ge=0, le=90)
    chronic_down_referral_days: int = Field(default=14, ge=0, le=90)  # a down-referred patient's first follow-up
    chronic_reminder_days_before: int = Field(default=3, ge=0, le=30)  # SMS reminder this many days before due
    chronic_reminder_spool_dir: str = "var/spool/reminders"  # the file adapter's outbox (one file per message)
    chronic_reminder_adapter: Literal["file", "gateway"] = "file"  # gateway: the notify_http_* SMS gateway
    chronic_alarm_escalate_minutes: int = Field(default=60, ge=1, le=10080)  # unacknowledged alarm → the institution
    # the national thresholds (mmHg, mmol/L): urgent referral at or past `urgent`, controlled below `target`
    chronic_urgent_sbp: int = Field(default=180, ge=100, le=300)
    chronic_urgent_dbp: int = Field(default=110, ge=60, le=200)
    chronic_target_sbp: int = Field(default=140, ge=90, le=200)
    chronic_target_dbp: int = Field(default=90, ge=50, le=150)
    chronic_urgent_glucose_high: float = Field(default=16.7, ge=7.0, le=40.0)
    chronic_urgent_glucose_low: float = Field(default=3.9, ge=1.0, le=7.0)
    chronic_target_glucose: float = Field(default=7.0, ge=4.0, le=15.0)
    chronic_tb_first_visit_days: int = Field(default=3, ge=0, le=30)  # TB: first home visit within 72 h of notification
    chronic_tb_intensive_days: int = Field(default=10, ge=1, le=60)  # TB: a visit every 10 days, intensive phase
    chronic_tb_continuation_days: int = Field(default=30, ge=1, le=90)  # TB: monthly in the continuation phase
    chronic_tb_missed_doses_report: int = Field(default=7, ge=1, le=60)  # TB: missed doses reported upwards
    chronic_smi_guided_days: int = Field(default=30, ge=1, le=120)  # SMI: still basically stable → a month

    # data that grows for years (PostgreSQL, archive/service.py): monthly partitions of the audit log, the
    # inbound messages and the outbox created this many months ahead; HL7 messages handled and delivered outbox
    # rows older than the retention (days; 0: kept for ever) removed. The audit log has no retention.
    partition_months_ahead: int = Field(default=3, ge=1, le=24)
    hl7_retention_days: int = Field(default=0, ge=0)
    # `yilianti archive`: months that ended this many months ago (0: none) move to the archive schema, when they
    # hold no open row (docs/partitioning.md); `--months` overrides
    archive_after_months: int = Field(default=0, ge=0)
    outbox_retention_days: int = Field(default=0, ge=0)

    # read scaling (db.py): the cockpit's reads go to this PostgreSQL streaming replica (empty: the primary) while
    # it is no further behind than the bound (else, or when it does not answer, to the primary); writes never
    read_replica_url: str = ""
    read_replica_max_lag_seconds: float = Field(default=30.0, gt=0)

    # external notification channels (notifications/channels.py), sent by the worker after commit, retried with
    # back-off through the outbox. SMS (or WeChat template messages) through an HTTP gateway: POST to the URL the
    # JSON template with {to} {text} {title} {kind} {key} filled in, an `Idempotency-Key` header, and with a
    # secret an `X-Yilianti-Signature: sha256=<HMAC of the body>` header (empty URL: no SMS). E-mail over SMTP
    # (empty host: no e-mail).
    notify_http_url: str = ""
    notify_http_secret: str = ""
    notify_http_template: str = '{"to": "{to}", "text": "{text}"}'
    notify_http_timeout: float = Field(default=10.0, gt=0)
    notify_smtp_host: str = ""
    notify_smtp_port: int = 25
    notify_smtp_from: str = "yilianti@localhost"
    notify_smtp_username: str = ""
    notify_smtp_password: str = ""
    notify_smtp_starttls: bool = False

    # jobs
    run_jobs_in_process: bool = True
    job_poll_seconds: float = 1.0
    outbox_max_attempts: int = 5
    # `yilianti worker` on PostgreSQL: jobs one worker process runs at once (procrastinate's concurrency)
    worker_concurrency: int = 4
    # /metrics of `yilianti worker` on a port of its own (0: none); the web's /metrics is on the web port
    worker_metrics_port: int = 0
    # `yilianti worker` also runs the HL7 MLLP and DICOM receivers (false, or `yilianti worker --no-receivers`:
    # jobs only — the second and further workers, so they do not fight for the MLLP/DICOM ports)
    worker_receivers: bool = True
    # `text` (with the request id) or `json` (one object a line, for the log collector)
    log_format: str = "text"
    # /readyz answers 503 when the oldest due outbox message has waited longer than this (0: never)
    ready_max_queue_lag_seconds: float = 300.0

    # database pool per process (PostgreSQL max_connections defaults to 100: keep workers × 20 below it)
    db_pool_size: int = 5
    db_max_overflow: int = 15
    db_pool_timeout: float = 30.0
    # PostgreSQL: a statement running longer, or waiting for a lock longer, is cancelled and the request gets
    # 503 with Retry-After (kit/dbfaults.py, web/faults.py) instead of hanging; migrations run without them; 0 = no limit
    db_statement_timeout_seconds: float = Field(default=30.0, ge=0)
    db_lock_timeout_seconds: float = Field(default=5.0, ge=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)

    # request bodies: at most this many bytes (413 before more is read), file uploads (multipart) at most
    # upload_max_bytes in all (each attachment also at most attachment_max_bytes)
    request_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    upload_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)

    # critical transfers: chest-pain and stroke network targets in minutes (DOMAIN.md §4)
    transfer_target_fmc_to_ecg: int = 10
    transfer_target_door_to_balloon: int = 90
    transfer_target_door_to_needle: int = 60

    # POST /api/v1/bookings on PostgreSQL: one async statement instead of the ORM path
    booking_fast_path: bool = True
    # POST /api/v1/referrals/{id}/transition (received, arrived) on PostgreSQL: one async statement per move
    referral_fast_path: bool = True
    # GET /api/v1/recognition/lookup on PostgreSQL: catalogue snapshot + one async statement (recognition/fastpath.py)
    recognition_fast_path: bool = True
    # GET /api/v1/patients/{id}/record with an API token on PostgreSQL: one async statement (record/fastpath.py)
    record_fast_path: bool = True
    # GET /api/v1/cockpit/figures with an API token: the route's answer kept per token and query for
    # auth_cache_seconds, recomputed in the background (cockpit/fastpath.py); any database
    cockpit_fast_path: bool = True
    # asyncpg connections per process for that statement (PostgreSQL's 100 connections are shared by all workers)
    booking_pool_size: int = 8
    # how long a resolved token/session subject is reused by the fast path (revocation delay)
    auth_cache_seconds: float = 5.0
    # the hot paths' read audits are written in batches at least this often (DOMAIN.md §4b: ≤ 1 s)
    audit_flush_seconds: float = 1.0
    # ... and appended to a local journal before the answer is sent, replayed at start after a crash
    # (audit/batch.py): its directory (empty = var_dir/audit-journal) and when it is fsync'd: "interval" (once
    # per flush: a killed process loses nothing, a machine that loses power the reads of the last interval) or
    # "always" (before each answer: nothing lost even then, at the cost of an fsync per read)
    audit_journal_dir: str = ""
    audit_journal_fsync: Literal["interval", "always"] = "interval"

    # referral routing help: how many days ahead free reserved slots are offered
    referral_routing_days: int = 14
    # referral step deadlines: minutes per status and priority over REFERRAL_STEP_DEADLINES above, e.g.
    # YILIANTI_REFERRAL_STEP_DEADLINES='{"submitted": {"urgent": 30}, "accepted": {"routine": 2880}}'
    referral_step_deadlines: dict[str, dict[str, int]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _production_hashes_passwords_fully(self) -> Settings:
        if self.production and self.password_hash_cost != "standard":
            raise ValueError("YILIANTI_PASSWORD_HASH_COST=minimal is for tests; production hashes at standard cost")
        return self

    @field_validator("referral_step_deadlines")
    @classmethod
    def _deadlines(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """Only timed statuses and known priorities, positive minutes."""
        priorities = {"routine", "urgent", "emergency"}
        for status, per in value.items():
            if status not in REFERRAL_STEP_DEADLINES:
                raise ValueError(f"referral_step_deadlines: {status!r} has no deadline "
                                 f"(one of {', '.join(REFERRAL_STEP_DEADLINES)})")
            for priority, minutes in per.items():
                if priority not in priorities or int(minutes) <= 0:
                    raise ValueError(f"referral_step_deadlines: {status}.{priority}={minutes!r} "
                                     "(priorities routine/urgent/emergency, minutes > 0)")
        return value

    # attachments (referral, teleconsultation): PDF/JPEG/PNG/DICOM, stored under var_dir/attachments by default
    attachment_max_bytes: int = 20 * 1024 * 1024
    attachments_dir: Path | None = None

    # teleconsultation (DOMAIN.md §7): answer deadline by urgency, expert qualification, video link
    consultation_answer_hours_routine: int = 48
    consultation_answer_hours_urgent: int = 24
    consultation_answer_hours_emergency: int = 2
    consultation_min_practice_years: int = 3
    video_url_template: str = ""  # e.g. https://video.example/room/{case_no}; empty = no link

    timezone: str = "Asia/Shanghai"
    default_locale: str = Field(default="zh")

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        return _read_or_create(self.var_dir / "secret.key", lambda: secrets.token_urlsafe(48))

    def resolved_data_keys(self) -> list[str]:
        """Field-encryption keys, newest first (comma separated), for key rotation."""
        if self.data_keys:
            return [k.strip() for k in self.data_keys.split(",") if k.strip()]
        path = self.var_dir / "data.keys"
        if self.production and not path.exists():
            warnings.warn(
                "YILIANTI_DATA_KEYS unset in production: generating var/data.keys; back it up", stacklevel=2
            )
        from cryptography.fernet import Fernet

        raw = _read_or_create(path, lambda: Fernet.generate_key().decode())
        return [k.strip() for k in raw.splitlines() if k.strip()]

    def resolved_index_key(self) -> str:
        """The blind-index key: YILIANTI_INDEX_KEY, else var/index.key (generated next to data.keys)."""
        if self.index_key:
            return self.index_key.strip()
        path = self.var_dir / "index.key"
        if self.production and not path.exists():
            warnings.warn(
                "YILIANTI_INDEX_KEY unset in production: generating var/index.key; back it up", stacklevel=2
            )
        return _read_or_create(path, lambda: secrets.token_urlsafe(32))


def normalise_db_url(url: str) -> str:
    """Accept `postgresql://user@host:port/db` and pick the driver ourselves."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _read_or_create(path: Path, make) -> str:  # type: ignore[no-untyped-def]
    """Read a generated secret, or create it (0600). Processes and threads starting at once agree on
    one value: the file is written under a temporary name and linked into place, so it appears
    complete, and whoever links second reads the winner's value."""
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            value = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
