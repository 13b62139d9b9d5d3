"""pytest fixtures for code that uses pipeline_models (registered through the `pytest11` entry
point).

Installing the package is enough: any test may ask for them, with no conftest and no set-up code.

    def test_review(pipeline_factory):
        chain = pipeline_factory.chain("review")
        pm.ReviewLog.answer(chain.review.message_id, "approve")
        assert chain.run.refresh().status == "approved"

- `pipeline_db`: a fresh database with the schema the migrations make, bound to `pipeline_models.db`
  for the test, then closed, and the proxy given back what it had before (usually nothing).
  In-memory SQLite, or PostgreSQL with `--pipeline-db-url` (ini: `pipeline_db_url`).
- `pipeline_factory`: a `PipelineFactory`: valid rows with unique defaults, and runs in any status,
  moved there by the package's own operations.

Nothing here is autouse: a test that asks for neither fixture is left alone.
"""
# the hints name pytest's types: never evaluated, so any pytest can load this
from __future__ import annotations

import datetime
import itertools
import secrets
import sqlite3
import uuid
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Union
from urllib.parse import urlsplit, urlunsplit

import peewee
import pytest

from . import _peewee
from .db import database_for, db, init_db, redact
from .enums import ExtractionMethod, ReviewAction, RunStatus, ShortStatus
from .fields import utcnow
from .models import (ALL_MODELS, Clip, DiscoveredVideo, PipelineRun, ReviewLog, Script, Short,
                     TTSAudio)
from .models.base import sync_copy
from .models.runs import CYCLE

__all__ = ["Chain", "PipelineFactory", "pipeline_db", "pipeline_factory"]

_URL_HELP = ("run pipeline_db on PostgreSQL: a server URL such as "
             "postgresql://user@host:5432/postgres. A throwaway "
             "database is created there (the user needs CREATEDB), emptied before each test, "
             "dropped at the end")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register --pipeline-db-url and the pipeline_db_url ini setting."""
    parser.getgroup("pipeline_models").addoption("--pipeline-db-url", dest="pipeline_db_url",
                                                 default=None, metavar="URL", help=_URL_HELP)
    parser.addini("pipeline_db_url", _URL_HELP, default="")


def _url(config: pytest.Config) -> str:
    """The PostgreSQL server URL the tests were given, or "" for in-memory SQLite."""
    url = config.getoption("pipeline_db_url") or config.getini("pipeline_db_url") or ""
    if url and urlsplit(url).scheme not in ("postgres", "postgresql"):
        raise pytest.UsageError("--pipeline-db-url / pipeline_db_url: expected a postgresql:// "
                                "URL, not "
                                f"{redact(url)!r} (without it, pipeline_db is an in-memory SQLite "
                                "database)")
    return url


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    """Say where pipeline_db is when it is not the default, in-memory SQLite."""
    url = _url(config)
    return f"pipeline_models: pipeline_db on a throwaway database of {redact(url)}" if url else None


@pytest.fixture(scope="session")
def _pipeline_db_schema() -> Iterator[sqlite3.Connection]:
    """An in-memory SQLite database migrated once by init_db: every pipeline_db on SQLite is a copy
    of it."""
    previous = db.obj
    migrated = peewee.SqliteDatabase(":memory:")
    try:
        init_db(migrated)
    finally:
        db.initialize(previous)
    # A plain connection any thread may copy from (a peewee ":memory:" database is one per thread).
    template = sqlite3.connect(":memory:", check_same_thread=False)
    migrated.connection().backup(template)
    migrated.close()
    yield template
    template.close()


@pytest.fixture(scope="session")
def _pipeline_db_postgres(request: pytest.FixtureRequest) -> Iterator[peewee.Database]:
    """A throwaway database on the --pipeline-db-url server, migrated once, dropped at the end of
    the session."""
    url = _url(request.config)
    server = database_for(url)
    name = "pipeline_test_" + uuid.uuid4().hex[:12]
    server.execute_sql(f'CREATE DATABASE "{name}"')
    previous = db.obj
    try:
        database = init_db(urlunsplit(urlsplit(url)._replace(path="/" + name)))
    except BaseException:
        server.execute_sql(f'DROP DATABASE IF EXISTS "{name}"')
        server.close()
        raise
    finally:
        db.initialize(previous)
    yield database
    database.close()
    # FORCE: a connection left open by a test's thread must not keep the database alive (PostgreSQL
    # 13+).
    force = " WITH (FORCE)" if (server.server_version or 0) >= 130000 else ""
    server.execute_sql(f'DROP DATABASE IF EXISTS "{name}"{force}')
    server.close()


@pytest.fixture
def pipeline_db(request: pytest.FixtureRequest) -> Iterator[peewee.Database]:
    """A fresh database with the migrated schema, bound to pipeline_models.db for this test only
    (the proxy then gets back what it had before)."""
    previous = db.obj
    if _url(request.config):
        database = request.getfixturevalue("_pipeline_db_postgres")
        tables = ", ".join(f'"{model._meta.table_name}"' for model in ALL_MODELS)
        database.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    else:
        # The very schema init_db(":memory:") makes, copied in a millisecond instead of migrated in
        # 60.
        database = peewee.SqliteDatabase(":memory:")
        request.getfixturevalue("_pipeline_db_schema").backup(database.connection())
    db.initialize(database)  # as init_db binds it: SQLite's foreign keys on, for every connection
    try:
        yield database
    finally:
        try:
            # refuses while a transaction the test began is open: pytest reports that
            database.close()
        finally:
            if not database.is_closed():  # and that transaction goes with its connection
                _peewee.connection(database).close()
                _peewee.forget_connection(database)
            db.initialize(previous)


class Chain(NamedTuple):
    """The rows of one run by the time it reached its status; empty lists and None for rows it has
    not yet."""

    run: PipelineRun
    videos: List[DiscoveredVideo]  # the clips' source videos, in rank order
    clips: List[Clip]  # ranked 1..N
    script: Optional[Script] = None
    audio: Optional[TTSAudio] = None
    shorts: List[Short] = []  # one of each of the top clips
    review: Optional[ReviewLog] = None


class PipelineFactory:
    """Valid rows for a test: unique defaults, and runs moved to their status by the package's own
    operations.

    Keyword arguments set any field, over the defaults. Statuses are strings or the enums' members.
    """

    WORKER = "test-worker"
    REVIEWER = "test-reviewer"
    NICHE = "gaming"
    FIRST_CYCLE = datetime.datetime(2026, 1, 1, 0, 30, tzinfo=datetime.timezone.utc)

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._cycles: Dict[str, int] = {}

    def _next(self) -> int:
        return next(self._numbers)

    def video(self, **fields: Any) -> DiscoveredVideo:
        """A pending candidate video of NICHE with a unique YouTube id."""
        n = self._next()
        video_id = fields.get("video_id", f"testvid{n:04d}")
        values = dict(video_id=video_id, title=f"Source video {n}", channel_name=f"Creator {n}",
                      channel_id=f"UCtest{n:04d}",
                      url=f"https://www.youtube.com/watch?v={video_id}", niche=self.NICHE,
                      duration_seconds=600, view_count=1000 * n, view_velocity=50.0,
                      viral_score=float(n), discovery_source="youtube_trending")
        return DiscoveredVideo.create(**{**values, **fields})

    def cycle(self, niche: Optional[str] = None) -> datetime.datetime:
        """The start of the next cycle of `niche` (NICHE by default) that has no run yet, the test's
        own included."""
        niche = niche or self.NICHE
        while True:
            n = self._cycles[niche] = self._cycles.get(niche, -1) + 1
            start = self.FIRST_CYCLE + n * CYCLE
            taken = PipelineRun.select().where(
                (PipelineRun.niche == niche) & (PipelineRun.cycle_start == start))
            if not taken.exists():
                return start

    def run(self, status: Union[RunStatus, str] = RunStatus.pending, niche: Optional[str] = None,
            **fields: Any) -> PipelineRun:
        """A run of `niche` for a new cycle moved to `status`, then `fields` written over it.

        pending: PipelineRun.schedule(); running: claimed by WORKER, as claim_next claims; review:
        ReviewLog.request(); approved, rejected: REVIEWER's answer; uploaded: approved, then its
        long-form video recorded with mark_uploaded(); failed: fail(retry=False) while running.
        """
        return self._chain(status, niche, fields, clips=0).run

    def chain(self, status: Union[RunStatus, str] = RunStatus.review, niche: Optional[str] = None,
              clips: int = 3) -> Chain:
        """A run of `niche` in `status`, with the rows the pipeline made on the way there.

        pending: no other row yet. From running on: `clips` clips ranked 1..N, each of a video of
        its own (new, taken by the run and kept with run.keep_clips(): used, taken_by_run the run),
        a script, TTS audio and a short of each of the top three clips, written by the worker under
        its claim (run.fenced()); clips=0 makes none of these; from review on: the review, with a
        chat message id for ReviewLog.answer(); rejected: the shorts rejected with the run;
        uploaded: the long-form video recorded.
        """
        return self._chain(status, niche, {}, clips=clips)

    def clip(self, run: Optional[PipelineRun] = None, video: Optional[DiscoveredVideo] = None,
             **fields: Any) -> Clip:
        """A clip of `run` (a new running run by default) from `video` (a new one), at the next free
        rank.

        Written with Clip.create(), as a test may want any row: the video is left as it is (chain()
        settles its videos as keep_clips() does).
        """
        run = self._run_of(run)
        video = self.video(niche=run.niche) if video is None else video
        rank = (Clip.select(peewee.fn.MAX(Clip.rank_position)).where(Clip.pipeline_run == run)
                .scalar() or 0) + 1
        values = dict(rank_position=rank, **self._moment(video, rank))
        del values["discovered_video"]
        return Clip.create(pipeline_run=run, discovered_video=video, **{**values, **fields})

    def _moment(self, video: DiscoveredVideo, rank: int) -> Dict[str, Any]:
        """A clip's fields (keep_clips() takes them) of `video`, as the clip ranked `rank` would
        have them."""
        n = self._next()
        return dict(discovered_video=video, start_time_seconds=12.0, end_time_seconds=30.0,
                    clip_duration_seconds=18.0, extraction_method=ExtractionMethod.most_replayed,
                    clip_file_path=f"clips/clip-{n}.mp4", score=1.0 / rank,
                    transcript=f"What is said in clip {n}.")

    def script(self, run: Optional[PipelineRun] = None, **fields: Any) -> Script:
        """A script for `run` (a new running run by default)."""
        n = self._next()
        opening, body, closing = (f"Here is countdown {n}.", "Number one is next.",
                                  "Follow for more.")
        values = dict(opening_text=opening, closing_text=closing,
                      full_script_json={"opening": opening,
                                        "clips": [{"intro": body, "outro": body}],
                                        "closing": closing},
                      total_char_count=len(opening + body + body + closing),
                      estimated_duration_seconds=3.0, llm_model_used="test-llm",
                      title=f"Countdown {n}", prompt_tokens=100, completion_tokens=50,
                      cost_usd=0.001)
        return Script.create(pipeline_run=self._run_of(run), **{**values, **fields})

    def audio(self, run: Optional[PipelineRun] = None, **fields: Any) -> TTSAudio:
        """TTS audio for `run` (a new running run by default)."""
        n = self._next()
        values = dict(engine_used="piper", voice_profile="narrator",
                      audio_file_path=f"audio/audio-{n}.wav", duration_seconds=3.0)
        return TTSAudio.create(pipeline_run=self._run_of(run), **{**values, **fields})

    def short(self, run: Optional[PipelineRun] = None, **fields: Any) -> Short:
        """A short of `run` (a new running run by default).

        status="uploaded" records the upload with Short.mark_uploaded() (a unique video id unless
        youtube_video_id is given), which needs an approved run.
        """
        n = self._next()
        values = dict(file_path=f"shorts/short-{n}.mp4", duration_seconds=18.0, title=f"Short {n}",
                      description=f"Short {n}, cut from a clip of the countdown.",
                      status=ShortStatus.pending)
        values.update(fields)
        video_id = None
        # pending first, then the real upload
        if ShortStatus(values["status"]) is ShortStatus.uploaded:
            video_id = values.pop("youtube_video_id", None) or f"testsht{n:04d}"
            values["status"] = ShortStatus.pending
        short = Short.create(pipeline_run=self._run_of(run), **values)
        if video_id is not None:
            short.mark_uploaded(video_id)
        return short

    def _run_of(self, run: Optional[PipelineRun]) -> PipelineRun:
        return self.run(status=RunStatus.running) if run is None else run

    def _chain(self, status: Union[RunStatus, str], niche: Optional[str], fields: Dict[str, Any],
               clips: int) -> Chain:
        """Schedule a run and move it to `status` as the pipeline would; `fields` are written
        last."""
        target = RunStatus(PipelineRun.status.db_value(status))  # ValueError listing the statuses
        niche = niche or self.NICHE
        run = PipelineRun.schedule(niche, self.cycle(niche))
        rows: Dict[str, Any] = {"clips": [], "shorts": []}
        if target is not RunStatus.pending:
            self._claim(run)
        if clips and target is not RunStatus.pending:
            videos = [self.video(niche=niche) for _ in range(clips)]
            with run.fenced():
                # The chain's own videos are its candidates, reserved as take_candidates() reserves
                # them (not by it: it would take a test's own pending videos too); keep_clips()
                # ranks them 1..N and leaves them used (processed 1) and taken by the run.
                (DiscoveredVideo.update(taken_by_run=run.id)
                 .where(DiscoveredVideo.id.in_([video.id for video in videos])).execute())
                rows["clips"] = run.keep_clips([self._moment(video, rank) for rank,
                                                video in enumerate(videos, 1)],
                                               min_clips=clips, max_clips=clips)
                rows["script"], rows["audio"] = self.script(run), self.audio(run)
                rows["shorts"] = [self.short(run, clip=clip) for clip in rows["clips"][:3]]
        if target is RunStatus.failed:
            run.fail("failed by pipeline_factory", retry=False)
        elif target not in (RunStatus.pending, RunStatus.running):
            rows["review"] = ReviewLog.request(run, message_id=f"test-message-{self._next()}")
            if target is not RunStatus.review:
                answer = (ReviewAction.reject if target is RunStatus.rejected
                          else ReviewAction.approve)
                rows["review"].respond(answer, reviewer=self.REVIEWER, run=run)
            if target is RunStatus.uploaded:
                run.mark_uploaded(f"testlng{self._next():04d}")
        if fields:
            PipelineRun.update(**fields).where(PipelineRun.id == run.id).execute()
        for row in (*rows["clips"], *rows["shorts"], rows.get("script"), rows.get("audio"),
                    rows.get("review")):
            if row is not None:
                row.refresh()
        # not refresh(), which keeps a claim `fields` may have replaced
        fresh = PipelineRun.get_by_id(run.id)
        sync_copy(run, fresh)
        run._claim = fresh._claim
        videos = [DiscoveredVideo.get_by_id(clip.discovered_video_id) for clip in rows["clips"]]
        return Chain(run=run, videos=videos, **rows)

    def _claim(self, run: PipelineRun) -> None:
        """Claim `run` for WORKER, writing what claim_next writes (claim_next would take the
        earliest pending run)."""
        now = utcnow()
        (PipelineRun.update(status=RunStatus.running, worker=self.WORKER,
                            claim_token=secrets.token_hex(16), not_before=None, started_at=now,
                            heartbeat_at=now, completed_at=None, updated_at=now)
         .where((PipelineRun.id == run.id) & (PipelineRun.status == RunStatus.pending)).execute())
        claimed = PipelineRun.get_by_id(run.id)
        sync_copy(run, claimed)
        run._claim = claimed._claim  # the object now holds the claim, as claim_next's would


@pytest.fixture
def pipeline_factory(pipeline_db: peewee.Database) -> PipelineFactory:
    """Makes valid videos, runs in any status, clips, scripts, audio, shorts and whole chains, in
    pipeline_db."""
    return PipelineFactory()
