"""Worker settings: environment variables with the prefix ALERTANIM_ (e.g. ALERTANIM_BROKER).

The method's own settings are `pipeline.config.MethodConfig`, nested here as `method`: each of its
fields is `ALERTANIM_METHOD__<FIELD>` (e.g. ALERTANIM_METHOD__STEPS=25).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.lexicon import CAP_PREFERENCE

# English first (its own words become the prompt), then the other languages the subject's
# lexicon reads, in the order pipeline/lexicons/shared.yaml gives (`cap_preference`).
CAP_LANGUAGES: tuple[str, ...] = CAP_PREFERENCE


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print the inputs (the secrets)
    model_config = SettingsConfigDict(env_prefix="ALERTANIM_", env_nested_delimiter="__",
                                      frozen=True, extra="ignore", hide_input_in_errors=True)

    # Kafka
    broker: str = "kafka://localhost:9092"
    app_id: str = "alertanim"
    topic_alerts: str = "alerts"
    topic_ready: str = "ready"
    topic_failed: str = "failed"
    topic_stage_prefix: str = "alertanim.stage."
    # A finished alert that came in as CAP is answered here with a CAP 1.2 Update that carries
    # its renditions as <resource>s.
    topic_cap: str = "cap"
    # An alert's first picture, from the scene library, as soon as its hazard is known
    # (schemas/instant.py); the generated animation follows on `ready`.
    topic_instant: str = "instant"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    # A client certificate (PEM) for brokers that ask for one (SSL, SASL_SSL): the certificate
    # chain, its private key when not in the same file, and the key's password when encrypted.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    # SASL PLAIN over SASL_PLAINTEXT sends the password in the clear: refused unless this is set.
    allow_plaintext_sasl: bool = False
    # The largest record the worker sends; a failure record that would be larger keeps only the
    # beginning of its payload. Stay under the broker's message.max.bytes (1 MiB by default).
    max_record_bytes: int = Field(default=1_000_000, ge=10_000)

    # What an input led to (the next stage's message, the completion and its CAP answer, the
    # instant event, or a failure record) leaves in a Kafka transaction with the input's offset:
    # consumers of `ready`, `instant` and `failed` that read with isolation.level=read_committed
    # see each record once (agents/emitter.py). Off: plain acknowledged sends.
    transactions: bool = True
    transaction_timeout_ms: int = Field(default=30_000, ge=1_000)

    # Worker
    stages: str = "all"  # comma-separated subset of ingest and the graph's stages, or "all"
    # The web port (agents/web.py): loopback only unless set (a container that is probed or
    # scraped from outside sets 0.0.0.0).
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The credential the status page, /status.json and the stored objects on the web port ask
    # for (`Authorization: Bearer <token>`, or HTTP Basic with the token as the password, as a
    # browser sends it). Unset: those routes answer clients on loopback only. /healthz, /ready
    # and /metrics never ask for it.
    web_token: SecretStr | None = None
    # The Host names those routes answer to (a name a DNS rebinding could point elsewhere is
    # refused with 421); "*" turns the check off. IPv6 addresses in brackets.
    web_allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
    max_text_chars: int = Field(default=5_000, ge=1)
    # Store a report.html beside each animation (its URL in AnimationReady.report).
    reports: bool = True
    # Send an alert's instant event (the scene library's entry for its hazard) from ingest, with
    # its hand-over, when the library has the entry.
    instant: bool = True
    # A worker running a model stage renders the library's missing entries once it has had no
    # stage message for this many seconds (0: never; `alertanim library build` builds them).
    library_idle_s: float = Field(default=30.0, ge=0)
    # The status page (`/` on the web port): how many recent alerts it lists, and the window of
    # its per-stage figures.
    status_alerts: int = Field(default=50, ge=1, le=1_000)
    status_window_s: float = Field(default=600.0, gt=0)
    # CAP in: the largest document read, and which <info> block of a multi-language alert to
    # animate: the first of these languages (primary subtags) the alert has, else its first.
    max_cap_bytes: int = Field(default=1_000_000, ge=1_000)
    cap_languages: tuple[str, ...] = CAP_LANGUAGES
    # CAP out: the Update's <sender>, and the base URL renditions are published under (the
    # <resource> <uri>); without one the presigned URL is used.
    cap_sender: str = Field(default="alertanim@localhost", min_length=1, pattern=r"^[^\s,<&]+$")
    public_base_url: str | None = None
    # Retries (one policy, agents/retry.py): an error that waiting cannot fix gets max_attempts
    # tries; one that it can (store or broker away, GPU memory) is retried until
    # retry_deadline_s has passed. Waits grow exponentially, with jitter, up to the max.
    max_attempts: int = Field(default=3, ge=1)
    retry_deadline_s: float = Field(default=60.0, ge=0)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_backoff_max_s: float = Field(default=10.0, ge=0)
    # Alerts that arrive together share one GPU batch in the batched stages (generate, sample).
    batch_max: int = Field(default=4, ge=1)
    batch_window_ms: int = Field(default=50, ge=0)  # 0 (or batch_max 1) turns batching off
    # The front stages (ingest, the subject stage) take what has arrived, up to front_batch_max
    # inputs, waiting at most front_batch_window_ms for more: their outcomes leave in one
    # transaction per input partition, so a burst costs one commit per batch, not per alert,
    # and its instant events go out in seconds. front_batch_max 1 turns it off.
    front_batch_max: int = Field(default=64, ge=1)
    front_batch_window_ms: int = Field(default=10, ge=0)
    # Threads that PNG-encode a stage's images and move them to and from the store in parallel.
    io_threads: int = Field(default=8, ge=1)
    # The images a worker stored last, kept in memory up to this many MiB of pixels, so that a
    # stage running on the same worker as the one before it reads them without a store round
    # trip and a PNG decode (an alert's images at 512² take about 40 MiB). 0 turns it off.
    image_cache_mb: int = Field(default=256, ge=0)
    # How long a worker's thread may hold Python's interpreter lock while another waits for it
    # (Python's own default is 5 ms). The event loop and the IO threads let it go at every
    # socket read and write, and take it back only once a model stage's thread lets go of it:
    # at 5 ms a worker running the front stages beside a model stage made each of their store
    # requests and Kafka replies wait behind the denoising loop's Python.
    switch_interval_ms: float = Field(default=0.5, gt=0, le=100)

    # Object store (claim check)
    store: Literal["s3", "local"] = "s3"
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

    # The method
    method: MethodConfig = MethodConfig()

    def stage_topic(self, stage: str) -> str:
        return f"{self.topic_stage_prefix}{stage}"

    @property
    def batching(self) -> bool:
        # (a zero window would make Faust wait for a full batch: that means no batching)
        return self.batch_max > 1 and self.batch_window_ms > 0

    @property
    def front_batching(self) -> bool:
        return self.front_batch_max > 1 and self.front_batch_window_ms > 0

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(u.split("://", 1)[-1] for u in self.broker.split(";"))

    @model_validator(mode="after")
    def _check_kafka_security(self) -> "Settings":
        protocol = self.security_protocol
        if protocol.startswith("SASL"):
            password = self.sasl_password.get_secret_value() if self.sasl_password else ""
            missing = [name for name, value in (("sasl_username", self.sasl_username),
                                                ("sasl_password", password)) if not value]
            if missing:
                raise ValueError(f"security_protocol {protocol} needs {' and '.join(missing)} "
                                 f"({', '.join('ALERTANIM_' + m.upper() for m in missing)})")
        if (protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN"
                and not self.allow_plaintext_sasl):
            raise ValueError("SASL PLAIN over SASL_PLAINTEXT sends the password unencrypted: use "
                             "security_protocol SASL_SSL (or a SCRAM sasl_mechanism), or set "
                             "allow_plaintext_sasl=true to accept that")
        client_cert = [name for name in ("ssl_certfile", "ssl_keyfile", "ssl_password")
                       if getattr(self, name) is not None]
        if client_cert and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"{', '.join(client_cert)} set, but security_protocol {protocol} "
                             "does not use TLS (SSL or SASL_SSL)")
        if (self.ssl_keyfile or self.ssl_password) and not self.ssl_certfile:
            raise ValueError("ssl_keyfile and ssl_password belong to a client certificate: "
                             "set ssl_certfile too")
        return self

    @model_validator(mode="after")
    def _check_web(self) -> "Settings":
        token = self.web_token.get_secret_value() if self.web_token else None
        if token is not None and (len(token) < 16 or token != token.strip()):
            raise ValueError("web_token must be at least 16 characters, without surrounding "
                             "whitespace (e.g. python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        if not self.web_allowed_hosts:
            raise ValueError('web_allowed_hosts is empty: name the hosts, or ["*"] for any')
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def kafka_ssl_context(self):
        """The TLS context for the broker (SSL, SASL_SSL): the CA to trust (the system's when
        ssl_cafile is unset) and the client certificate when one is set."""
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile,
            password=self.ssl_password.get_secret_value() if self.ssl_password else None)

    def kafka_client_kwargs(self) -> dict:
        """aiokafka keyword arguments for the configured security."""
        kw: dict = {"bootstrap_servers": self.bootstrap_servers,
                    "security_protocol": self.security_protocol}
        if self.kafka_uses_tls:
            kw["ssl_context"] = self.kafka_ssl_context()
        if self.security_protocol.startswith("SASL"):
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password.get_secret_value()
                      if self.sasl_password else None)
        return kw
