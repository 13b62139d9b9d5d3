"""What a run makes: Clip, Script, TTSAudio and Short (a rendered short, from render through review to upload)."""
import datetime
from typing import Optional

from peewee import Check

from ..db import write_lock
from ..enums import ShortStatus
from ..errors import AlreadyUploaded, InvalidTransition, UploadInDoubt
from ..fields import (CheckedCharField, CheckedEnumField, CheckedFloatField, CheckedForeignKeyField,
                      CheckedIntegerField, CheckedJSONField, CheckedTextField, UTCDateTimeField, utcnow)
from .base import BaseModel, _at_least_zero, _sync
from .runs import PipelineRun


class Clip(BaseModel):
    """A cut of the source video, scored for how well it would work as a short."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="clips", on_delete="CASCADE",
                                          help_text="the run that cut it")
    start_seconds = CheckedFloatField(constraints=_at_least_zero("start_seconds"),
                                      help_text="where it starts in the source")
    end_seconds = CheckedFloatField(help_text="where it ends; after start_seconds")
    file_path = CheckedTextField(null=True, help_text="the cut file")
    score = CheckedFloatField(null=True, help_text="how well it would work as a short")
    transcript = CheckedTextField(null=True, help_text="what is said in it")
    created_at = UTCDateTimeField(default=utcnow, help_text="when it was cut")

    class Meta:
        table_name = "clips"
        constraints = [Check("end_seconds > start_seconds", name="clips_end_after_start")]


class Script(BaseModel):
    """The narration an LLM wrote for a run, with what it cost."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="scripts", on_delete="CASCADE",
                                          help_text="the run it was written for")
    opening_text = CheckedTextField(null=True, help_text="the opening line, the hook")
    closing_text = CheckedTextField(null=True, help_text="the closing line, the call to action")
    full_script_json = CheckedJSONField(types=(dict, list), help_text="the whole script, structured: a dict or a list")
    total_char_count = CheckedIntegerField(constraints=_at_least_zero("total_char_count"),
                                           help_text="characters of narration")
    estimated_duration_seconds = CheckedFloatField(constraints=_at_least_zero("estimated_duration_seconds"),
                                                   help_text="how long the narration should take to speak")
    llm_model_used = CheckedTextField(help_text="the LLM that wrote it")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was written")
    title = CheckedTextField(null=True, help_text="the title it proposes for the short")
    prompt_tokens = CheckedIntegerField(null=True, constraints=_at_least_zero("prompt_tokens"),
                                        help_text="tokens sent to the LLM")
    completion_tokens = CheckedIntegerField(null=True, constraints=_at_least_zero("completion_tokens"),
                                            help_text="tokens the LLM wrote")
    cost_usd = CheckedFloatField(null=True, constraints=_at_least_zero("cost_usd"), help_text="what the LLM call cost")

    class Meta:
        table_name = "scripts"


class TTSAudio(BaseModel):
    """Synthesised narration audio for a run."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="audio", on_delete="CASCADE",
                                          help_text="the run it narrates")
    engine_used = CheckedCharField(max_length=255, help_text="the TTS engine, e.g. piper or openai")
    voice_profile = CheckedCharField(max_length=255, null=True, help_text="the voice it used")
    audio_file_path = CheckedCharField(max_length=512, null=True, help_text="the audio file")
    duration_seconds = CheckedFloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                         help_text="its length")
    generated_at = UTCDateTimeField(default=utcnow, help_text="when it was synthesised")

    class Meta:
        table_name = "tts_audio"


class Short(BaseModel):
    """A rendered vertical short, from render through review to upload."""

    pipeline_run = CheckedForeignKeyField(PipelineRun, backref="shorts", on_delete="CASCADE",
                                          help_text="the run that rendered it")
    clip = CheckedForeignKeyField(Clip, backref="shorts", null=True, on_delete="SET NULL",
                                  help_text="the clip it is cut from")
    file_path = CheckedCharField(max_length=512, null=True, help_text="the rendered video file")
    duration_seconds = CheckedFloatField(null=True, constraints=_at_least_zero("duration_seconds"),
                                         help_text="its length")
    title = CheckedCharField(max_length=255, null=True, help_text="its title on YouTube")
    description = CheckedTextField(null=True, help_text="its description on YouTube")
    # Unique when set (NULLs never collide): a short is uploaded once.
    youtube_video_id = CheckedCharField(max_length=100, null=True, unique=True,
                                        help_text="its YouTube id once uploaded")
    youtube_url = CheckedCharField(max_length=512, null=True, help_text="its address on YouTube")
    status = CheckedEnumField(ShortStatus, max_length=32, default=ShortStatus.pending,
                              help_text="pending, rendered, uploaded, rejected or failed")
    uploaded_at = UTCDateTimeField(null=True, help_text="when it was uploaded")
    # Set when an upload begins: with no video id after it, an upload may have reached YouTube unrecorded.
    upload_started_at = UTCDateTimeField(null=True, help_text="when an upload of it began (the upload claim)")
    created_at = UTCDateTimeField(null=True, default=utcnow, help_text="when it was rendered")

    class Meta:
        table_name = "shorts"

    # Where each status may go, and what moves it (drawn in the README's diagram).
    TRANSITIONS = {
        ShortStatus.pending: {ShortStatus.rendered: "the worker renders it", ShortStatus.uploaded: "mark_uploaded()",
                              ShortStatus.rejected: "ReviewLog respond() reject", ShortStatus.failed: "the worker"},
        ShortStatus.rendered: {ShortStatus.uploaded: "mark_uploaded()",
                               ShortStatus.rejected: "ReviewLog respond() reject",
                               ShortStatus.failed: "the uploader gives up"},
        ShortStatus.failed: {ShortStatus.uploaded: "mark_uploaded()"},
        ShortStatus.uploaded: {},
        ShortStatus.rejected: {},
    }

    def _uploadable(self, row: "Short") -> None:
        """Refuse an upload of a short whose status cannot become uploaded (a rejected one)."""
        if ShortStatus.uploaded not in self.TRANSITIONS[row.status]:
            raise InvalidTransition(f"short {self.id}", row.status, ShortStatus.uploaded,
                                    "only a pending, rendered or failed short is uploaded")

    def start_upload(self) -> None:
        """Claim this short for one upload, before sending it to YouTube.

        Raises AlreadyUploaded if it has a video id, and UploadInDoubt if an earlier upload began and never
        recorded one (a crash between the upload and mark_uploaded): check the channel, then call
        mark_uploaded() with the id found or abandon_upload() to allow a new upload. Raises InvalidTransition
        for a rejected short and DoesNotExist for a deleted one. Nothing else, whatever other processes do.
        """
        cls = type(self)
        now = utcnow()
        with write_lock():  # the check and the claim see one state of the row
            row = self._locked_row()
            if row.youtube_video_id is not None:
                raise AlreadyUploaded(f"short {self.id} is already on YouTube as {row.youtube_video_id}")
            if row.upload_started_at is not None:
                raise UploadInDoubt(
                    f"short {self.id} began uploading at {row.upload_started_at:%Y-%m-%d %H:%M:%S} UTC and "
                    "recorded no video id: check the channel, then call mark_uploaded(id) or abandon_upload()")
            self._uploadable(row)
            cls.update(upload_started_at=now).where(cls.id == self.id).execute()
        self.upload_started_at = now

    def abandon_upload(self) -> None:
        """Release an upload claim when the upload is known not to have reached YouTube."""
        cls = type(self)
        if cls.update(upload_started_at=None).where((cls.id == self.id) & cls.youtube_video_id.is_null()).execute():
            self.upload_started_at = None

    def mark_uploaded(self, youtube_video_id: str, youtube_url: Optional[str] = None,
                      uploaded_at: Optional[datetime.datetime] = None) -> bool:
        """Record the upload (video id, url, time, status uploaded); True if this call recorded it.

        When this was the last of an approved run's shorts still to upload, the run is published and its
        video marked processed, in the same transaction (and the run object this short holds is updated).
        Recording the same id again is a harmless retry (False); a different id raises AlreadyUploaded; a
        missing, empty or blank id raises ValueError.
        """
        if not isinstance(youtube_video_id, str) or not youtube_video_id.strip():
            raise ValueError(f"Short.youtube_video_id: mark_uploaded needs the video id YouTube returned, "
                             f"not {youtube_video_id!r}")
        cls = type(self)
        changes = dict(youtube_video_id=youtube_video_id, status=ShortStatus.uploaded,
                       youtube_url=f"https://youtube.com/shorts/{youtube_video_id}" if youtube_url is None
                       else youtube_url,
                       uploaded_at=utcnow() if uploaded_at is None else uploaded_at)
        with write_lock():
            # The run first: two of its shorts recorded at once take turns, so the second sees the first.
            run = PipelineRun(id=self.pipeline_run_id)._locked_row()
            row = self._locked_row()
            if row.youtube_video_id is not None:
                if row.youtube_video_id != youtube_video_id:
                    raise AlreadyUploaded(f"short {self.id} is already on YouTube as {row.youtube_video_id}; "
                                          f"refusing to record {youtube_video_id}")
                return False
            self._uploadable(row)
            cls.update(**changes).where(cls.id == self.id).execute()
            run._publish_if_done()
        for name, value in changes.items():
            setattr(self, name, value)
        _sync(self.__rel__.get("pipeline_run"), run)
        return True
