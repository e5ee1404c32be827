"""Worker settings: environment variables with the prefix ALERTANIM_ (e.g. ALERTANIM_BROKER)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.workflow import MethodConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTANIM_", frozen=True, extra="ignore")

    # Kafka
    broker: str = "kafka://localhost:9092"
    app_id: str = "alertanim"
    topic_alerts: str = "alerts"
    topic_ready: str = "ready"
    topic_failed: str = "failed"
    topic_stage_prefix: str = "alertanim.stage."
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    # Worker
    stages: str = "all"  # comma-separated subset of ingest,generate,score,mask,sample,select,animate
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    max_text_chars: int = Field(default=5_000, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_backoff_max_s: float = Field(default=10.0, ge=0)
    # Alerts that arrive together share one GPU batch in the generate and sample stages.
    batch_max: int = Field(default=4, ge=1)
    batch_window_ms: int = Field(default=50, ge=0)  # 0 (or batch_max 1) turns batching off
    # Threads that PNG-encode a stage's images and move them to and from the store in parallel.
    io_threads: int = Field(default=8, ge=1)

    # Object store (claim check)
    store: str = "s3"  # s3 | local
    local_dir: str = ".alertanim/store"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "alertanim"
    s3_prefix: str = "v1"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    presign_expiry_s: int = Field(default=86_400, ge=1, le=604_800)

    # Models
    models: str = "default"  # default | tiny | random-full | a directory
    device: str = "auto"  # auto picks cuda when present
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: float16 on cuda
    # The execution levers of pipeline.accel: auto turns them on for CUDA. Compiling the UNet
    # (a torch.compile mode) costs minutes per batch shape at start, then runs faster.
    fast_path: Literal["auto", "on", "off"] = "auto"
    compile: Literal["off", "default", "max-autotune", "max-autotune-no-cudagraphs",
                     "reduce-overhead"] = "off"

    # Method (defaults are the method's; see pipeline.workflow.MethodConfig)
    candidates: int = Field(default=10, ge=1)
    variants: int = Field(default=16, ge=1)
    frames: int = Field(default=8, ge=1)
    inbetween: int = Field(default=3, ge=0)
    steps: int = Field(default=25, ge=1)
    guidance: float = 7.5
    strength: float = Field(default=0.75, gt=0, le=1)
    random_coverage: float = Field(default=0.15, ge=0, le=1)
    gif_max_bytes: int = Field(default=300_000, ge=1_000)

    def method(self) -> MethodConfig:
        return MethodConfig(candidates=self.candidates, variants=self.variants,
                            frames=self.frames, inbetween=self.inbetween, steps=self.steps,
                            guidance=self.guidance, strength=self.strength,
                            random_coverage=self.random_coverage,
                            gif_max_bytes=self.gif_max_bytes)

    def stage_topic(self, stage: str) -> str:
        return f"{self.topic_stage_prefix}{stage}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(u.split("://", 1)[-1] for u in self.broker.split(";"))

    def kafka_client_kwargs(self) -> dict:
        """aiokafka keyword arguments for the configured security."""
        kw: dict = {"bootstrap_servers": self.bootstrap_servers,
                    "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password.get_secret_value()
                      if self.sasl_password else None)
        return kw
