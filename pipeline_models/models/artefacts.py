"""What a run makes: its ranked Clips, the Script, the TTSAudio, and the Shorts (uploaded once,
after approval)."""
import contextlib
from typing import Any, ContextManager, Dict, Iterator, Set

import peewee
from peewee import SQL, Check

from ..db import db, write_lock
from ..enums import ContentIdRisk, ExtractionMethod, RunStatus, ShortStatus
from ..errors import InvalidTransition
from ..fields import (CheckedCharField, CheckedEnumField, CheckedFloatField, CheckedForeignKeyField,
                      CheckedIntegerField, CheckedJSONField, CheckedTextField, UTCDateTimeField,
                      backend_of, utcnow)
from .base import BaseModel, at_least_zero
from .runs import PipelineRun
from .uploads import UploadOnce
from .videos import URL_LENGTH, DiscoveredVideo


class Clip(BaseModel):
    """One moment of a source video, cut for a run and ranked in it (1 = the most viral, shown
    last)."""

    # index=False: the pipeline's idx_clips_pipeline is its index.
    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="clips", on_delete="CASCADE",
                                          index=False, help_text="the run it is part of")
    # No cascade: deleting a video must not silently take the runs' clips (and their shorts) with
    # it.
    discovered_video = CheckedForeignKeyField(DiscoveredVideo, backref="clips",
                                              help_text="the source video")
    rank_position = CheckedIntegerField(constraints=[Check("rank_position >= 1")],
                                        help_text="its rank in the run, 1 = the most viral")
    start_time_seconds = CheckedFloatField(constraints=at_least_zero("start_time_seconds"),
                                           help_text="where it starts in the source")
    end_time_seconds = CheckedFloatField(help_text="where it ends in the source; after the start")
    clip_duration_seconds = CheckedFloatField(constraints=at_least_zero("clip_duration_seconds"),
                                              help_text="its length in the compilation")
    extraction_method = CheckedEnumField(ExtractionMethod, max_length=32, null=True,
                                         help_text="most_replayed, transcript, audio_energy or "
                                                   "scene_detection")
    clip_file_path = CheckedCharField(max_length=URL_LENGTH, null=True, help_text="the cut file")
    content_id_risk = CheckedEnumField(ContentIdRisk, max_length=16, default=ContentIdRisk.unknown,
                                       help_text="low, medium, high or unknown")
    # Beyond the pipeline's columns (nullable, so its inserts work unchanged):
    score = CheckedFloatField(null=True, help_text="how viral the moment is; the ranks follow it")
    transcript = CheckedTextField(null=True, help_text="what is said in it")
    created_at = UTCDateTimeField(null=True, default=utcnow, help_text="when it was cut")
    dropped_at = UTCDateTimeField(null=True,
                                  help_text="when a reviewer's skip dropped it (kept as history)")

    # A clip's life, for the docs' state diagram: kept (ranked) until a reviewer's skip drops it.
    TRANSITIONS = {"kept": {"dropped": "respond() skip: dropped_at set, the rest ranked 1..N "
                                       "again"}, "dropped": {}}

    class Meta:
        table_name = "clips"
        constraints = [Check("end_time_seconds > start_time_seconds", name="clips_end_after_start")]

    # What save() checks against the run's other clips when they change.
    _PLACE = ("pipeline_run", "discovered_video", "rank_position")

    def _saving(self, inserting: bool, names: Set[str]) -> ContextManager[Any]:
        """save() of a new clip, or of one moved: it must name a video and a rank its run does not
        have yet (ValueError naming them, nothing written)."""
        if not inserting and not names & set(self._PLACE):
            return contextlib.nullcontext()
        return self._in_its_place()

    @contextlib.contextmanager
    def _in_its_place(self) -> Iterator[None]:
        with write_lock():
            # The run's row lock queues the clip writes of one run (PostgreSQL), so the check below
            # holds. A run that does not exist is left to the foreign key: the insert fails as any
            # model's would.
            run = PipelineRun.select(PipelineRun.id).where(PipelineRun.id == self.pipeline_run_id)
            (run.for_update() if backend_of(db) == "postgres" else run).first()
            self._refuse_taken_place()
            yield

    def _refuse_taken_place(self) -> None:
        cls = type(self)
        others = cls.select(cls.id, cls.discovered_video, cls.rank_position).where(
            (cls.pipeline_run == self.pipeline_run_id) & (cls.id != (self.id or 0)))
        taken = others.where(cls.discovered_video == self.discovered_video_id).first()
        if taken is not None:
            raise ValueError(f"Clip.discovered_video: run {self.pipeline_run_id} already has a "
                             "clip of video "
                             f"{self.discovered_video_id} (clip {taken.id}); a run takes one clip "
                             "per video")
        taken = others.where(
            (cls.rank_position == self.rank_position) & cls.dropped_at.is_null()).first()
        if taken is not None and self.dropped_at is None:
            raise ValueError(f"Clip.rank_position: run {self.pipeline_run_id} already has a clip "
                             f"ranked {self.rank_position} (clip {taken.id})")

    @classmethod
    def insert_rows(cls, rows: Any, fields: Any = None, chunk_size: int = 2000,
                    none_is_default: Any = ()) -> int:
        """BaseModel.insert_rows, with save()'s rule: no run gets two clips of one video (ValueError
        naming the run and the video, nothing written); two of one rank are refused by the
        database's unique index."""
        with write_lock():
            before = cls.select(peewee.fn.MAX(cls.id)).scalar() or 0
            count = super().insert_rows(rows, fields=fields, chunk_size=chunk_size,
                                        none_is_default=none_is_default)
            other = cls.alias()
            clash = (cls.select(cls.pipeline_run, cls.discovered_video)
                     .join(other, on=((other.pipeline_run == cls.pipeline_run)
                                      & (other.discovered_video == cls.discovered_video)
                                      & (other.id < cls.id)))
                     .where(cls.id > before).tuples().first())
            if clash is not None:
                raise ValueError(f"Clip.discovered_video: run {clash[0]} would have two clips of "
                                 f"video {clash[1]}; "
                                 f"a run takes one clip per video (nothing was written)")
        return count


# The pipeline's index; the ranks of a run's clips (those not dropped) are distinct, kept by the
# database.
Clip.add_index(Clip.pipeline_run, name="idx_clips_pipeline")
Clip.add_index(Clip.index(Clip.pipeline_run, Clip.rank_position, unique=True,
                          name="clips_rank_in_run", where=SQL("dropped_at IS NULL")))


class Script(BaseModel):
    """The narration an LLM wrote for a run, with what it cost."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="scripts", on_delete="CASCADE",
                                          help_text="the run it was written for")
    opening_text = CheckedTextField(null=True, help_text="the opening line, the hook")
    closing_text = CheckedTextField(null=True, help_text="the closing line, the call to action")
    full_script_json = CheckedJSONField(types=(dict, list),
                                        help_text="the whole script, structured: a dict or a list")
    total_char_count = CheckedIntegerField(constraints=at_least_zero("total_char_count"),
                                           help_text="characters of narration")
    estimated_duration_seconds = CheckedFloatField(
        constraints=at_least_zero("estimated_duration_seconds"),
        help_text="how long the narration should take to speak")
    llm_model_used = CheckedTextField(help_text="the LLM that wrote it")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was written")
    title = CheckedTextField(null=True, help_text="the title it proposes for the short")
    prompt_tokens = CheckedIntegerField(null=True, constraints=at_least_zero("prompt_tokens"),
                                        help_text="tokens sent to the LLM")
    completion_tokens = CheckedIntegerField(null=True,
                                            constraints=at_least_zero("completion_tokens"),
                                            help_text="tokens the LLM wrote")
    cost_usd = CheckedFloatField(null=True, constraints=at_least_zero("cost_usd"),
                                 help_text="what the LLM call cost")

    class Meta:
        table_name = "scripts"


class TTSAudio(BaseModel):
    """Synthesised narration audio for a run."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="audio", on_delete="CASCADE",
                                          help_text="the run it narrates")
    engine_used = CheckedCharField(max_length=255,
                                   help_text="the TTS engine: xtts_v2, styletts2 or piper")
    voice_profile = CheckedCharField(max_length=255, null=True, help_text="the voice it used")
    audio_file_path = CheckedCharField(max_length=512, null=True, help_text="the audio file")
    duration_seconds = CheckedFloatField(null=True, constraints=at_least_zero("duration_seconds"),
                                         help_text="its length")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was synthesised")

    class Meta:
        table_name = "tts_audio"


class Short(UploadOnce, BaseModel):
    """A vertical short cut from one of a run's top clips, uploaded once after the run is
    approved."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="shorts", on_delete="CASCADE",
                                          help_text="the run that rendered it")
    clip = CheckedForeignKeyField(Clip, backref="shorts", null=True, on_delete="SET NULL",
                                  help_text="the clip it is cut from")
    file_path = CheckedCharField(max_length=512, null=True, help_text="the rendered video file")
    duration_seconds = CheckedFloatField(null=True, constraints=at_least_zero("duration_seconds"),
                                         help_text="its length")
    title = CheckedCharField(max_length=255, null=True, help_text="its title on YouTube")
    description = CheckedTextField(null=True, help_text="its description on YouTube")
    # Unique when set (NULLs never collide): a short is uploaded once.
    youtube_video_id = CheckedCharField(max_length=100, null=True, unique=True,
                                        help_text="its YouTube id once uploaded")
    youtube_url = CheckedCharField(max_length=512, null=True, help_text="its address on YouTube")
    status = CheckedEnumField(ShortStatus, max_length=32, default=ShortStatus.pending,
                              help_text="pending, review, uploaded, failed or rejected")
    uploaded_at = UTCDateTimeField(null=True, help_text="when it was uploaded")
    # Set when an upload begins: with no video id after it, an upload may have reached YouTube
    # unrecorded.
    upload_started_at = UTCDateTimeField(null=True,
                                         help_text="when an upload of it began (the upload claim)")
    created_at = UTCDateTimeField(null=True, default=utcnow, help_text="when it was rendered")

    class Meta:
        table_name = "shorts"
        # What was uploaded or began uploading lately (the digest, /stats, the daily cap).
        indexes = ((("uploaded_at",), False), (("upload_started_at",), False))

    # Where each status may go, and what moves it (drawn in the docs' state diagram).
    TRANSITIONS = {
        ShortStatus.pending: {ShortStatus.review: "ReviewLog.request() of its run",
                              ShortStatus.uploaded: "mark_uploaded()",
                              ShortStatus.rejected: "its run rejected or rendered again",
                              ShortStatus.failed: "the worker"},
        ShortStatus.review: {ShortStatus.uploaded: "mark_uploaded()",
                             ShortStatus.rejected: "its run rejected or rendered again",
                             ShortStatus.failed: "the uploader gives up"},
        ShortStatus.failed: {ShortStatus.uploaded: "mark_uploaded()"},
        ShortStatus.uploaded: {},
        ShortStatus.rejected: {},
    }
    # A short is uploaded only once its run is approved (its long-form video may be uploaded
    # already).
    RUN_UPLOADABLE = (RunStatus.approved, RunStatus.uploaded)
    _URL, _NAME = "https://youtube.com/shorts/{}", "short"

    def _upload_row(self) -> "Short":
        # The run first: a review answer locks the run, then its shorts; the same order never
        # deadlocks.
        self._run_row = PipelineRun(id=self.pipeline_run_id).locked_row()
        return self.locked_row()

    def _uploadable(self, row: "Short") -> None:
        """Refuse an upload of a short of a run not approved, or whose status cannot become
        uploaded."""
        run = self._run_row
        if run.status not in self.RUN_UPLOADABLE:
            raise InvalidTransition(f"short {self.id}", row.status, ShortStatus.uploaded,
                                    f"its run {run.id} is {run.status}: only an approved run's "
                                    "shorts are uploaded")
        if ShortStatus.uploaded not in self.TRANSITIONS[row.status]:
            raise InvalidTransition(f"short {self.id}", row.status, ShortStatus.uploaded,
                                    "only a pending, review or failed short is uploaded")

    def _record_upload(self, changes: Dict[str, Any]) -> None:
        cls = type(self)
        changes["status"] = ShortStatus.uploaded
        cls.update(**changes).where(cls.id == self.id).execute()
        self._written(changes)
