"""UploadOnce: a run's long-form video or a short uploaded to YouTube exactly once, within the daily
cap."""
import datetime
from typing import Any, Dict, List, Optional

from ..db import serialized, write_lock
from ..errors import AlreadyUploaded, UploadCapReached, UploadInDoubt
from ..fields import checked_now, utcnow, whole_number
from .base import unchanged_on_failure
from .config import ConfigOverride, setting_name


class UploadOnce:
    """Uploading a row's video to YouTube exactly once: a run's long-form video, a short.

    start_upload() claims the upload before the video is sent, mark_uploaded() records the id
    YouTube gave, abandon_upload() releases a claim whose upload is known not to have arrived. The
    row has the columns youtube_video_id (unique), youtube_url and upload_started_at; the model says
    when it may be uploaded (_uploadable) and what recording one writes (_record_upload). Uploads of
    every such model count against one daily cap.
    """

    _URL = "{}"  # the default youtube_url, from the id
    _NAME = "row"  # what messages call it
    _UPLOADED_AT = "uploaded_at"  # the column a recorded upload's time is in

    # The pipeline's rule: at most 20 uploads a day, long-form and shorts alike. Counted over the
    # last 24 hours, not per calendar day, so no 40 go out around midnight.
    MAX_UPLOADS, MAX_UPLOADS_KEY = 20, "youtube.max_uploads_per_day"
    DAY = datetime.timedelta(hours=24)
    _counted: List[type] = []  # every model that uploads, by table (the cap counts them all)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        UploadOnce._counted.append(cls)

    @classmethod
    def uploads_since(cls, since: datetime.datetime) -> List[datetime.datetime]:
        """When each upload counted against the cap began (or, begun elsewhere, was recorded) after
        `since`, oldest first: long-form and shorts alike. An abandoned upload does not count."""
        times: List[datetime.datetime] = []
        tables = set()
        for model in UploadOnce._counted:
            if not hasattr(model, "_meta") or model._meta.table_name in tables:
                continue  # a user's subclass of a model shares its table
            tables.add(model._meta.table_name)
            recorded = getattr(model, model._UPLOADED_AT)
            began = model.upload_started_at
            counted = (began > since) | (began.is_null() & model.youtube_video_id.is_null(False)
                                          & (recorded > since))
            times += [
                row[0] or row[1] for row in model.select(began, recorded).where(counted).tuples()]
        return sorted(times)

    @classmethod
    def next_upload_slot(cls,
                         now: Optional[datetime.datetime] = None) -> Optional[datetime.datetime]:
        """None when an upload may start now; else when the daily cap (youtube.max_uploads_per_day)
        lets the next one start: 24 hours after the upload that then leaves the window."""
        cap = ConfigOverride.setting(cls.MAX_UPLOADS_KEY, cls.MAX_UPLOADS)
        return cls._next_slot(checked_now("next_upload_slot", now), cap)

    @classmethod
    def _next_slot(cls, now: datetime.datetime, cap: int) -> Optional[datetime.datetime]:
        times = cls.uploads_since(now - cls.DAY)
        if len(times) < cap:
            return None
        return times[len(times) - cap] + cls.DAY if cap else now + cls.DAY

    def _upload_row(self) -> Any:
        """This row, locked (the caller holds write_lock); a model that must lock another row first
        overrides it."""
        return self.locked_row()

    def _uploadable(self, row: Any) -> None:
        """Raise InvalidTransition when `row` (the database's) may not be uploaded now."""
        raise NotImplementedError

    def _record_upload(self, changes: Dict[str, Any]) -> None:
        """Write the recorded upload (youtube_video_id, youtube_url, uploaded_at) and what it
        moves."""
        raise NotImplementedError

    def _subject(self) -> str:
        return f"{self._NAME} {self.get_id()}"

    def start_upload(self, now: Optional[datetime.datetime] = None) -> None:
        """Claim this video for one upload, before sending it to YouTube.

        Raises AlreadyUploaded if it has a video id, and UploadInDoubt if an earlier upload began
        and never recorded one (a crash between the upload and mark_uploaded): check the channel,
        then call mark_uploaded() with the id found or abandon_upload() to allow a new upload.
        Raises InvalidTransition when it may not be uploaded (see the model), UploadCapReached (with
        its next_slot) when the daily cap is reached, and DoesNotExist for a deleted row; nothing
        else, whatever other processes do. `now` (default: the clock) is when the upload begins.
        """
        cls = type(self)
        now = checked_now("start_upload", now)
        with write_lock():  # the check and the claim see one state of the row
            row = self._upload_row()
            if row.youtube_video_id is not None:
                raise AlreadyUploaded(f"{self._subject()} is already on YouTube as "
                                      f"{row.youtube_video_id}")
            if row.upload_started_at is not None:
                raise UploadInDoubt(
                    f"{self._subject()} began uploading at "
                    f"{row.upload_started_at:%Y-%m-%d %H:%M:%S} UTC and "
                    "recorded no video id: check the channel, then call mark_uploaded(id) or "
                    "abandon_upload()")
            self._uploadable(row)
            # the cap counts every upload: no two may count at once, on any machine
            serialized("uploads")
            cap = ConfigOverride.setting(self.MAX_UPLOADS_KEY, self.MAX_UPLOADS)
            slot = self._next_slot(now, cap)
            if slot is not None:
                raise UploadCapReached(
                    f"{self._subject()}: the daily upload cap is reached ({cap} uploads in 24 "
                    "hours, "
                    f"{self.MAX_UPLOADS_KEY}); the next slot opens at {slot:%Y-%m-%d %H:%M:%S} UTC",
                    slot)
            (cls.update(upload_started_at=now).where(cls._meta.primary_key == self.get_id())
             .execute())
        self._written({"upload_started_at": now})

    def abandon_upload(self) -> None:
        """Release an upload claim when the upload is known not to have reached YouTube."""
        cls = type(self)
        unrecorded = (cls._meta.primary_key == self.get_id()) & cls.youtube_video_id.is_null()
        if cls.update(upload_started_at=None).where(unrecorded).execute():
            self._written({"upload_started_at": None})

    def mark_uploaded(self, youtube_video_id: str, youtube_url: Optional[str] = None,
                      uploaded_at: Optional[datetime.datetime] = None) -> bool:
        """Record the upload (video id, url, time, status uploaded); True if this call recorded it.

        Recording the same id again is a harmless retry (False); a different id raises
        AlreadyUploaded; a missing, empty or blank id raises ValueError; a row that may not be
        uploaded, InvalidTransition.
        """
        cls = type(self)
        if not isinstance(youtube_video_id, str) or not youtube_video_id.strip():
            raise ValueError(f"{cls.__name__}.youtube_video_id: mark_uploaded needs the video id "
                             f"YouTube returned, not {youtube_video_id!r}")
        changes = dict(youtube_video_id=youtube_video_id,
                       youtube_url=(self._URL.format(youtube_video_id) if youtube_url is None
                                    else youtube_url),
                       uploaded_at=utcnow() if uploaded_at is None else uploaded_at)
        for name in ("youtube_url", "uploaded_at"):
            field = cls._meta.fields.get(name) or cls._meta.fields["completed_at"]
            field.db_value(changes[name])  # refused, naming the field, before anything is written
        with unchanged_on_failure(self), write_lock():
            row = self._upload_row()
            if row.youtube_video_id is not None:
                if row.youtube_video_id != youtube_video_id:
                    raise AlreadyUploaded(f"{self._subject()} is already on YouTube as "
                                          f"{row.youtube_video_id}; "
                                          f"refusing to record {youtube_video_id}")
                return False
            self._uploadable(row)
            self._record_upload(changes)
        return True


ConfigOverride.CHECKS[UploadOnce.MAX_UPLOADS_KEY] = whole_number(
    setting_name(UploadOnce.MAX_UPLOADS_KEY), 0, 10000)
