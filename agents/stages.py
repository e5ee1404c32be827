"""The stages as the stream runs them: fetch artifacts by key → run the pipeline stage → store
artifacts → return the next message. Synchronous; the agents call the model stages in the GPU
executor thread and the others on CPU threads.

Keys are deterministic (alert id, run fingerprint, stage, index), so a redelivered message
rewrites the same objects and a finished alert is never computed twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline import __version__ as PIPELINE_VERSION
from pipeline.accel import FastPath, warm_up
from pipeline.models import DEFAULT_IDS, Models, load_models, resolve_device
from pipeline.score import clip_scores
from pipeline.select import select_frames
from pipeline.generate import generate_batch
from pipeline.sample import masked_variants_batch
from pipeline.subject import primary_subject
from pipeline.workflow import MethodConfig, animate, run_stage_mask
from schemas import AnimationReady, InvalidAlert, StageMessage, parse_alert

from .settings import Settings
from .storage import ObjectStore, png_bytes, png_image

STAGES = ("ingest", "generate", "score", "mask", "sample", "select", "animate")
NEXT = dict(zip(STAGES, STAGES[1:]))
STAGE_MODELS = {"generate": ("sd",), "score": ("clip",), "mask": ("clipseg",),
                "sample": ("sd",), "select": ("vit",)}  # the model parts each stage uses
MODEL_STAGES = set(STAGE_MODELS)
BATCHED = ("generate", "sample")  # stages that batch several alerts into one GPU call


def parse_stages(spec: str) -> tuple[str, ...]:
    if spec.strip() == "all":
        return STAGES
    wanted = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in wanted if s not in STAGES]
    if unknown or not wanted:
        raise ValueError(f"unknown stages {unknown or spec!r}; choose from {', '.join(STAGES)} or all")
    return tuple(s for s in STAGES if s in wanted)


def seed_for(alert_id: str) -> int:
    return int.from_bytes(hashlib.sha256(alert_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class StageRunner:
    settings: Settings
    store: ObjectStore
    _models: Models | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self):
        self.config: MethodConfig = self.settings.method()
        # A stage's images are encoded and moved in parallel: PNG and the store's round trips
        # would otherwise hold the GPU thread for tens of milliseconds per image.
        self._io = ThreadPoolExecutor(self.settings.io_threads, thread_name_prefix="alertanim-io")

    # -- models ----------------------------------------------------------------------------
    def models(self) -> Models:
        with self._lock:
            if self._models is None:
                s = self.settings
                device, dtype = resolve_device(s.device, s.dtype)
                stages = parse_stages(s.stages)
                models = load_models(s.models, device=device, dtype=dtype,
                                     fast=FastPath.named(s.fast_path, device, s.compile),
                                     parts={p for st in stages for p in STAGE_MODELS.get(st, ())})
                if s.compile != "off":
                    # Compile now, at every batch shape, so that readiness means fast.
                    batching = s.batch_max > 1 and s.batch_window_ms > 0
                    warm_up(models, self.config, range(1, (s.batch_max if batching else 1) + 1),
                            [st for st in stages if st in BATCHED])
                self._models = models
            return self._models

    @property
    def models_loaded(self) -> bool:
        return self._models is not None

    # -- keys --------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """Names everything one configuration produces for an alert: the method's settings, the
        model source and the pipeline version."""
        basis = f"{self.config.fingerprint()}|{self.settings.models}|{PIPELINE_VERSION}"
        return hashlib.sha256(basis.encode()).hexdigest()[:12]

    @staticmethod
    def artifact_key(alert_id: str, run: str, stage: str, name: str) -> str:
        return f"runs/{alert_id}/{run}/{stage}/{name}"

    def key(self, msg: StageMessage, stage: str, name: str) -> str:
        return self.artifact_key(msg.alert_id, msg.run, stage, name)

    @staticmethod
    def alert_key(alert_id: str) -> str:
        return f"alerts/{alert_id}.json"

    def ready_key(self, alert_id: str, run: str) -> str:
        return f"runs/{alert_id}/{run}/ready.json"

    def _images(self, keys) -> list:
        return list(self._io.map(lambda k: png_image(self.store.get(k)), keys))

    def _put_images(self, msg, stage, images) -> list[str]:
        keys = [self.key(msg, stage, f"{i:02d}.png") for i in range(len(images))]
        # list() waits for every put and re-raises the first failure
        list(self._io.map(lambda kv: self.store.put(kv[0], png_bytes(kv[1]), "image/png"),
                          zip(keys, images)))
        return keys

    @staticmethod
    def _advance(msg: StageMessage, stage: str, t0: float, **changes) -> StageMessage:
        seconds = {**msg.seconds, stage: round(time.perf_counter() - t0, 4)}
        artifacts = {**msg.artifacts, **changes.pop("artifacts", {})}
        return msg.model_copy(update=dict(stage=NEXT[stage], seconds=seconds,
                                          artifacts=artifacts, attempt=1, **changes))

    # -- stages ------------------------------------------------------------------------------
    def ingest(self, raw: bytes, source: str = "") -> StageMessage | AnimationReady | None:
        """Validate, tell a redelivery from a re-publication, and start a run.

        `source` names the Kafka record (topic:partition:offset). The same record seen again is a
        redelivery after a crash: it goes on unless its animation already went out. The same
        content under a new record is a re-publication: a finished result is sent again, never
        recomputed. Other content under a used id is refused.
        """
        t0 = time.perf_counter()
        alert = parse_alert(raw, self.settings.max_text_chars)
        run = self.run_id
        digest = alert.content_hash()
        akey = self.alert_key(alert.id)
        if self.store.exists(akey):
            seen = json.loads(self.store.get(akey))
            if seen["content_hash"] != digest:
                raise InvalidAlert("duplicate_id_conflict",
                                   f"alert id {alert.id!r} was already used for different content",
                                   alert.id)
            if seen.get("source") != source:
                done = self.finished(alert.id, run)
                if done is not None:
                    return done
                # Still in flight (or failed): run it again rather than risk losing it. Both
                # copies share a partition at every stage, so the second reaches `animate` after
                # the first and is suppressed there once the first event went out.
            elif self.emitted(alert.id, run):
                return None
        else:
            self.store.put(akey, json.dumps({"content_hash": digest, "run": run,
                                             "source": source,
                                             "received_at": time.time()}).encode(),
                           "application/json")
        subject = primary_subject(alert.text, alert.event)
        msg = StageMessage(alert=alert, stage="ingest", run=run, seed=seed_for(alert.id),
                           subject=subject.word, prompt=subject.prompt, received_at=time.time())
        return self._advance(msg, "ingest", t0)

    def generate_many(self, msgs: list[StageMessage]) -> list[StageMessage]:
        t0 = time.perf_counter()
        m = self.models()
        c = self.config
        batches = generate_batch(m.text2img, [x.prompt for x in msgs], [x.seed for x in msgs],
                                 n=c.candidates, steps=c.steps, guidance=c.guidance,
                                 size=m.image_size)
        return [self._advance(msg, "generate", t0,
                              artifacts={"candidates": self._put_images(msg, "generate", images)})
                for msg, images in zip(msgs, batches)]

    def generate(self, msg: StageMessage) -> StageMessage:
        return self.generate_many([msg])[0]

    def score(self, msg: StageMessage) -> StageMessage:
        t0 = time.perf_counter()
        m = self.models()
        scores = clip_scores(m.clip, m.clip_processor, self._images(msg.artifacts["candidates"]),
                             msg.prompt, self.config.score_weight)
        best = msg.artifacts["candidates"][scores.best_index]
        return self._advance(msg, "score", t0, scores=list(scores.values),
                             best_index=scores.best_index, artifacts={"best": [best]})

    def mask(self, msg: StageMessage) -> StageMessage:
        t0 = time.perf_counter()
        [best] = self._images(msg.artifacts["best"])
        result = run_stage_mask(self.models(), best, msg.subject, self.config, msg.seed)
        [key] = self._put_images(msg, "mask", [result.image()])
        return self._advance(msg, "mask", t0, artifacts={"mask": [key]},
                             mask_coverage=result.coverage,
                             subject_mask_coverage=result.subject_coverage)

    def sample_many(self, msgs: list[StageMessage]) -> list[StageMessage]:
        t0 = time.perf_counter()
        bests = self._images([x.artifacts["best"][0] for x in msgs])
        masks = [m.convert("L") for m in self._images([x.artifacts["mask"][0] for x in msgs])]
        c = self.config
        batches = masked_variants_batch(
            self.models().inpaint, bests, masks, [x.prompt for x in msgs],
            [x.seed + 1 for x in msgs], k=c.variants, strength=c.strength, steps=c.steps,
            guidance=c.guidance)
        return [self._advance(msg, "sample", t0,
                              artifacts={"variants": self._put_images(msg, "sample", variants)})
                for msg, variants in zip(msgs, batches)]

    def sample(self, msg: StageMessage) -> StageMessage:
        return self.sample_many([msg])[0]

    def select(self, msg: StageMessage) -> StageMessage:
        t0 = time.perf_counter()
        m = self.models()
        keys = msg.artifacts["best"] + msg.artifacts["variants"]
        images = self._images(keys)
        _, path, _ = select_frames(m.vit, m.vit_processor, images[0], images[1:],
                                   self.config.frames, self.config.loop)
        return self._advance(msg, "select", t0, selected=list(path.indices),
                             artifacts={"frames": [keys[i] for i in path.indices]})

    def animate(self, msg: StageMessage) -> AnimationReady | None:
        if self.emitted(msg.alert_id, msg.run):
            return None  # a redelivery after the event went out
        done = self.finished(msg.alert_id, msg.run)
        if done is not None:
            return done  # stored, but the event may not have gone out: send it (again)
        t0 = time.perf_counter()
        gif, webp = animate(self._images(msg.artifacts["frames"]), self.config)
        gif_key = self.key(msg, "animate", "animation.gif")
        s3_uri = self.store.put(gif_key, gif.data, gif.content_type)
        url, expires = self.store.url(gif_key, self.settings.presign_expiry_s)
        extra = {}
        if webp is not None:
            webp_key = self.key(msg, "animate", "animation.webp")
            extra = {"webp_s3_uri": self.store.put(webp_key, webp.data, webp.content_type),
                     "webp_url": self.store.url(webp_key, self.settings.presign_expiry_s)[0]}
        seconds = {**msg.seconds, "animate": round(time.perf_counter() - t0, 4)}
        ready = AnimationReady(
            alert_id=msg.alert_id, s3_uri=s3_uri, url=url, url_expires_at=expires,
            content_type=gif.content_type, bytes=len(gif.data), width=gif.width,
            height=gif.height, frame_count=gif.frame_count, duration_ms=gif.duration_ms,
            clip_score=msg.scores[msg.best_index] if msg.best_index is not None else 0.0,
            subject=msg.subject, stage_seconds=seconds,
            latency_seconds=round(time.time() - msg.received_at, 4),
            model_ids=self._model_ids(), pipeline_version=PIPELINE_VERSION, run=msg.run, **extra)
        self.store.put(self.ready_key(msg.alert_id, msg.run), ready.to_bytes(),
                       "application/json")
        return ready

    def emitted_key(self, alert_id: str, run: str) -> str:
        return f"runs/{alert_id}/{run}/emitted"

    def emitted(self, alert_id: str, run: str) -> bool:
        return self.store.exists(self.emitted_key(alert_id, run))

    def mark_emitted(self, ready: AnimationReady) -> None:
        self.store.put(self.emitted_key(ready.alert_id, ready.run), b"", "application/octet-stream")

    def finished(self, alert_id: str, run: str) -> AnimationReady | None:
        """The stored completion of this run, with a fresh URL, or None."""
        rkey = self.ready_key(alert_id, run)
        if not self.store.exists(rkey):
            return None
        ready = AnimationReady.from_bytes(self.store.get(rkey))
        gif_key = self.artifact_key(alert_id, run, "animate", "animation.gif")
        url, expires = self.store.url(gif_key, self.settings.presign_expiry_s)
        return ready.model_copy(update={"url": url, "url_expires_at": expires})

    def _model_ids(self) -> dict[str, str]:
        if self.settings.models == "default":
            return dict(DEFAULT_IDS)
        return {name: f"{self.settings.models}:{name}" for name in DEFAULT_IDS}

    def handler(self, stage: str):
        return getattr(self, stage)

    def batch_handler(self, stage: str):
        return getattr(self, f"{stage}_many")
