"""The compilation cycle with many processes on one database (a SQLite file, or PostgreSQL):

- two processes taking candidates of one niche 1,000 times never put a video in two runs, nor let
  two runs hold one video at once (an audit trigger logs every reservation), and every taken video
  is accounted for;
- six processes claiming under a cap of 2 never have three runs running (a watcher process samples
  the count; an audit trigger logs every status change, replayed by SQL order), every run gets done,
  and a paused niche is never claimed;
- two janitors running the review cron at once remind each review once and auto-hold each stale
  review once;
- processes uploading long-form videos and shorts at once upload each once and never more than the
  daily cap (20); the refusal says when the next slot opens, and it opens then.

Each test takes a few seconds; bench/soak_queue.py checks the same invariants under chaos, for
longer.
"""
import collections
import datetime
import json
import multiprocessing
import random
import time

import peewee
import pytest

import pipeline_models as pm
from conftest import CYCLE_START
from pipeline_models import Processed, ReviewAction, RunStatus

spawn = multiprocessing.get_context("spawn")
UTC = datetime.timezone.utc


def _prepared(target):
    """`target` made (migrated) and left unbound, so that the processes open it themselves."""
    pm.init_db(target).close()
    pm.db.initialize(None)
    return str(target)


def _run_all(procs, timeout=120):
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
        assert proc.exitcode == 0, f"{proc.name} exited {proc.exitcode}"


def _results(tmp_path, count):
    return [json.loads((tmp_path / f"out{n}.json").read_text()) for n in range(count)]


def _workers(target, tmp_path, worker, count, *args):
    """`count` processes on `worker(target, barrier, n, out, *args)`, started at once; their JSON
    results."""
    barrier = spawn.Barrier(count)
    _run_all([spawn.Process(target=worker, name=f"{worker.__name__}-{n}",
                            args=(target, barrier, n, str(tmp_path / f"out{n}.json"), *args))
              for n in range(count)])
    return _results(tmp_path, count)


def _dump(out, **result):
    with open(out, "w") as fh:
        json.dump(result, fh)


def _error(exc):
    return f"{type(exc).__name__}: {exc}"


def _audit(database, name, table, condition, values):
    """An audit table `name` (id in write order, then `values`' columns) filled by a trigger on each
    UPDATE of `table` where `condition` holds, on SQLite or PostgreSQL. `values` maps column to SQL
    expression."""
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    key = "SERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    database.execute_sql(f"CREATE TABLE {name} (id {key}, "
                         f"{', '.join(f'{c} TEXT' for c in values)})")
    insert = f"INSERT INTO {name} ({', '.join(values)}) VALUES ({', '.join(values.values())})"
    if postgres:
        database.execute_sql(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ "
                             f"BEGIN {insert}; RETURN NULL; END $body$")
        database.execute_sql(f"CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH ROW WHEN "
                             f"({condition}) EXECUTE FUNCTION {name}()")
    else:
        database.execute_sql(f"CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH ROW WHEN "
                             f"({condition}) BEGIN {insert}; END")


def _changed(database, column):
    postgres = isinstance(database, peewee.PostgresqlDatabase)
    return f"NEW.{column} IS {'DISTINCT FROM' if postgres else 'NOT'} OLD.{column}"


def _rows(sql):
    return [tuple(row) for row in pm.db.execute_sql(sql)]


def _schedule(niche, cycles):
    """Pending runs of `niche` for its first `cycles` cycles, in one statement."""
    six = datetime.timedelta(hours=6)
    pm.PipelineRun.insert_many([dict(niche=niche, cycle_start=CYCLE_START + i * six,
                                     cycle_end=CYCLE_START + (i + 1) * six)
                                for i in range(cycles)]).execute()


# --- candidates taken once ------------------------------------------------------------------------

TAKES = 1000  # in total, by the two processes
VIDEOS = 700  # a kept clip uses its video up: about half the takes keep one


def _clip(video):
    return dict(discovered_video=video, start_time_seconds=1.0, end_time_seconds=19.0,
                clip_duration_seconds=18.0)


def _take_worker(target, barrier, n, out, takes):
    """Claim a run, take 1-3 candidates, then keep the best one's clip (the others back to pending,
    or now and then skipped) and ask for the review, or fail the attempt (it keeps its reservation
    for the retry, which another process may make), or fail for good (the reservation is released).
    Logs every take."""
    pm.init_db(target)
    rng = random.Random(n)
    log, errors = [], []
    barrier.wait()
    while len(log) < takes:
        try:
            run = pm.PipelineRun.claim_next(f"taker-{n}")
            if run is None:  # no run is due: the other process holds the one left, or retries it
                time.sleep(0.001)
                continue
            attempt = run.retry_count + 1
            taken = run.take_candidates(rng.randint(1, 3))
            outcome = rng.choices(["keep", "retry", "fatal"], weights=[5, 3, 2])[0]
            kept = []
            if outcome == "keep":
                others = Processed.skipped if rng.random() < 0.1 else Processed.pending
                kept = [clip.discovered_video_id
                        for clip in run.keep_clips([_clip(taken[0])], min_clips=1, max_clips=1,
                                                   others=others)]
                pm.ReviewLog.request(run)
                outcome = f"keep, others {int(others)}"
            elif outcome == "retry":
                run.fail("the download failed")
            else:
                run.fail("copyright strike", retry=False)
            log.append({"run": run.id, "attempt": attempt, "taken": [v.id for v in taken],
                        "outcome": outcome, "kept": kept})
        except Exception as exc:  # any error fails the test
            errors.append(_error(exc))
            if len(errors) > 20:
                break
    _dump(out, log=log, errors=errors)


@pytest.mark.slow
def test_two_processes_taking_candidates_never_share_a_video(fresh_target, tmp_path):
    database = pm.init_db(fresh_target)
    # a failed attempt is claimable again at once
    pm.ConfigOverride.set(pm.PipelineRun.RETRY_DELAY_KEY, 0)
    with database.atomic():
        pm.DiscoveredVideo.insert_many([dict(video_id=f"v{i:04d}", title=f"Video {i}",
                                             channel_name="c", channel_id="UCc", url=f"u{i}",
                                             niche="gaming", viral_score=float(i % 50))
                                        for i in range(VIDEOS)]).execute()
        _schedule("gaming", TAKES)
        # Every change of a reservation, in the order it was made (a video's changes queue on its
        # row lock).
        _audit(database, "take_audit", "discovered_videos", _changed(database, "taken_by_run"),
               {"video": "CAST(NEW.id AS TEXT)", "old_run": "CAST(OLD.taken_by_run AS TEXT)",
                "new_run": "CAST(NEW.taken_by_run AS TEXT)"})
    results = _workers(_prepared(fresh_target), tmp_path, _take_worker, 2, TAKES // 2)

    assert [r["errors"] for r in results] == [[], []]
    takes = [take for r in results for take in r["log"]]
    assert len(takes) == TAKES
    database = pm.init_db(fresh_target)
    # No video ever went from one run's reservation to another's: released (NULL) between two takes.
    changes = [(int(v), o and int(o), w and int(w)) for v, o, w in
               _rows("SELECT video, old_run, new_run FROM take_audit ORDER BY id")]
    assert [c for c in changes if c[1] is not None and c[2] is not None] == []
    holder = {}
    for video, old, new in changes:
        assert holder.get(video) == old, (
            f"video {video}: {old} -> {new}, but {holder.get(video)} held it")
        holder[video] = new
    # What the processes were given is what the audit shows each run reserved, and a retried attempt
    # got its reservation back (maybe from the other process), topped up.
    given = {(take["run"], video) for take in takes for video in take["taken"]}
    assert given == {(new, video) for video, old, new in changes if new is not None}
    by_run = collections.defaultdict(dict)
    for take in takes:
        assert len(set(take["taken"])) == len(take["taken"]) >= 1, take
        assert take["attempt"] not in by_run[take["run"]], (
            f"run {take['run']} was taken twice in one attempt")
        by_run[take["run"]][take["attempt"]] = set(take["taken"])
    for run_id, attempts in by_run.items():
        held = [attempts[n] for n in sorted(attempts)]
        assert all(a <= b for a, b in zip(held, held[1:])), (
            f"run {run_id} lost its reservation: {attempts}")
    # No video is in two runs' clips, and the clips are the ones kept.
    assert _rows("SELECT discovered_video_id FROM clips GROUP BY discovered_video_id "
                 "HAVING COUNT(DISTINCT pipeline_run_id) > 1") == []
    kept = [video for take in takes for video in take["kept"]]
    clips = {clip.discovered_video_id: clip.pipeline_run_id for clip in pm.Clip.select()}
    assert sorted(kept) == sorted(clips) and len(set(kept)) == len(kept)
    # Every video taken is accounted for: used by the run that took it, skipped, back to pending, or
    # held by a run still pending (a retry nobody claimed yet), which took it. (A settled video,
    # used or skipped, keeps the id of the run that took it.)
    runs = {run.id: run for run in pm.PipelineRun.select()}
    taken_by = collections.defaultdict(set)
    for run_id, video in given:
        taken_by[video].add(run_id)
    for video in pm.DiscoveredVideo.select().where(pm.DiscoveredVideo.id.in_(list(taken_by))):
        state = (video.processed, video.taken_by_run)
        if video.processed is Processed.used:
            assert clips[video.id] in taken_by[video.id], state
            continue
        assert video.id not in clips and video.processed in (Processed.pending,
                                                             Processed.skipped), state
        assert video.taken_by_run in taken_by[video.id] | {None}, state
        if video.processed is Processed.pending and video.taken_by_run is not None:
            assert runs[video.taken_by_run].status is RunStatus.pending, (
                state, runs[video.taken_by_run].status)
    # The race ran: both processes took, and many videos were taken again after a release, by
    # either.
    assert all(r["log"] for r in results)
    taken_again = [video for video, owners in taken_by.items() if len(owners) > 1]
    print(f"{len(takes)} takes of {len(taken_by)} videos, {len(taken_again)} taken again, "
          f"{len(kept)} kept")
    assert len(taken_again) > 50
    workers = {run.id: run.worker for run in runs.values()}
    assert any(len({workers[r] for r in taken_by[video]}) > 1 for video in taken_again)


# --- the concurrency cap and paused niches --------------------------------------------------------

CLAIMERS = 6
CAP = 2


def _claimer(target, barrier, n, out):
    """Claim runs until none is due: hold each a moment, then ask for its review, or fail it
    (retried)."""
    pm.init_db(target)
    rng = random.Random(n)
    claimed, errors = [], []
    paused = pm.PipelineRun.paused_niches()
    left = (pm.PipelineRun.status.in_([RunStatus.pending, RunStatus.running])
            & pm.PipelineRun.niche.not_in(sorted(paused)))
    barrier.wait()
    while True:
        try:
            run = pm.PipelineRun.claim_next(f"claimer-{n}")
            if run is None:
                if not pm.PipelineRun.select().where(left).exists():
                    break
                time.sleep(0.001)  # the cap is reached, or the runs left are retried by others
                continue
            claimed.append([run.id, run.niche])
            time.sleep(rng.uniform(0, 0.004))  # working: the other claimers meet the cap
            if rng.random() < 0.2:
                run.fail("a render crashed")
            else:
                pm.ReviewLog.request(run)
            # A worker's pace between runs: without it, on a loaded machine, the two processes that
            # hold the runs take the next ones at once and the other four never meet the cap.
            time.sleep(rng.uniform(0.002, 0.01))
        except Exception as exc:
            errors.append(_error(exc))
            if len(errors) > 20:
                break
    _dump(out, claimed=claimed, errors=errors)


def _watcher(target, stop, out):
    """Count the running runs, again and again, until `stop` is set: how many samples saw each
    count."""
    database = pm.init_db(target)
    seen = collections.Counter()
    while not stop.is_set():
        seen[database.execute_sql(
            "SELECT count(*) FROM pipeline_runs WHERE status = 'running'").fetchone()[0]] += 1
    _dump(out, seen=seen)


@pytest.mark.slow
def test_six_processes_claiming_under_a_cap_of_two_never_run_three(fresh_target, tmp_path):
    database = pm.init_db(fresh_target)
    pm.ConfigOverride.set(pm.PipelineRun.MAX_RUNNING_KEY, CAP)
    pm.ConfigOverride.set(pm.PipelineRun.RETRY_DELAY_KEY, 0)
    with database.atomic():
        for niche in ("gaming", "sports", "funny"):
            _schedule(niche, 30)
        # Every status change of a run, in commit order: a claim counts the running runs after every
        # move out of running it waited for committed, so a replay in id order counts no fewer than
        # were running.
        _audit(database, "status_audit", "pipeline_runs", _changed(database, "status"),
               {"run": "CAST(NEW.id AS TEXT)", "niche": "NEW.niche", "old": "OLD.status",
                "new": "NEW.status"})
    pm.PipelineRun.pause("funny")
    target = _prepared(fresh_target)

    stop = spawn.Event()
    watcher = spawn.Process(target=_watcher, name="watcher", args=(target, stop,
                                                                   str(tmp_path / "watcher.json")))
    watcher.start()
    try:
        results = _workers(target, tmp_path, _claimer, CLAIMERS)
    finally:
        stop.set()
        watcher.join(60)
    assert watcher.exitcode == 0
    seen = {int(k): v for k,
            v in json.loads((tmp_path / "watcher.json").read_text())["seen"].items()}

    assert [r["errors"] for r in results] == [[]] * CLAIMERS
    assert max(seen) <= CAP, seen  # the watcher never saw three running
    database = pm.init_db(fresh_target)
    running, most = 0, 0
    for old, new in _rows("SELECT old, new FROM status_audit ORDER BY id"):
        running += (new == "running") - (old == "running")
        most = max(most, running)
    assert (most, running) == (CAP, 0)  # the replay never had three running, and had two
    # Every run of the active niches got done (to review, or failed after its retries); the paused
    # niche's were never claimed, by any process, and are claimed once it is resumed.
    statuses = collections.Counter((run.niche, run.status) for run in pm.PipelineRun.select())
    assert statuses[("funny", RunStatus.pending)] == 30
    for niche in ("gaming", "sports"):
        assert (statuses[(niche, RunStatus.review)]
                + statuses[(niche, RunStatus.failed)] == 30), statuses
    claims = [niche for r in results for _, niche in r["claimed"]]
    assert ("funny" not in claims
            and _rows("SELECT run FROM status_audit WHERE niche = 'funny'") == [])
    assert len(claims) == len(_rows("SELECT run FROM status_audit WHERE new = 'running'")) >= 60
    # the race really ran
    assert sum(1 for r in results if r["claimed"]) > 2 and sum(seen.values()) > 10
    pm.PipelineRun.resume("funny")
    assert pm.PipelineRun.claim_next("after").niche == "funny"


# --- reminders and auto-hold from two janitors ----------------------------------------------------

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)
# minutes of cron: every review sent in the two hours before NOW is reminded, then held
STEPS = 4 * 60 + 2


def _janitor(target, barrier, n, out):
    """The review cron, once a (simulated) minute in step with the other janitor: remind each due
    review the mark says to, then hold the stale ones."""
    pm.init_db(target)
    reminded, refused, held = [], 0, 0
    errors = []
    for step in range(STEPS):
        now = NOW + step * MINUTE
        barrier.wait()  # both janitors' crons fire in the same minute
        try:
            for review in list(pm.ReviewLog.due_reminders(now=now)):
                if review.mark_reminded(now=now):
                    reminded.append(review.id)  # this janitor sends the reminder
                else:
                    refused += 1
            held += pm.ReviewLog.hold_stale(now=now)
        except Exception as exc:
            errors.append(_error(exc))
    _dump(out, reminded=reminded, refused=refused, held=held, errors=errors)


@pytest.mark.slow
def test_two_janitors_remind_each_review_once_and_hold_each_stale_one_once(fresh_target, tmp_path):
    database = pm.init_db(fresh_target)
    rng = random.Random(23)
    with database.atomic():
        _schedule("gaming", 130)
        pm.PipelineRun.update(status=RunStatus.review).execute()
        runs = [run.id for run in pm.PipelineRun.select().order_by(pm.PipelineRun.id)]
        # 100 unanswered, sent in the two hours before NOW; 20 answered and 10 held by a human, as
        # old.
        sent = [NOW - datetime.timedelta(seconds=rng.uniform(0, 7200)) for _ in runs]
        answers = ([None] * 100 + [ReviewAction.approve] * 10 + [ReviewAction.reject] * 10
                   + [ReviewAction.hold] * 10)
        pm.ReviewLog.insert_many([dict(pipeline_run=run, sent_at=at, action=action,
                                       message_id=f"m{run}",
                                       responded_at=at + MINUTE if action else None)
                                  for run, at, action in zip(runs, sent, answers)]).execute()
    answered = list(pm.ReviewLog.select().where(pm.ReviewLog.action.is_null(False))
                    .order_by(pm.ReviewLog.id).dicts())
    open_ids = [r.id for r in pm.ReviewLog.select().where(pm.ReviewLog.action.is_null())]

    results = _workers(_prepared(fresh_target), tmp_path, _janitor, 2)

    assert [r["errors"] for r in results] == [[], []]
    reminders = collections.Counter(review for r in results for review in r["reminded"])
    assert reminders == {review: 1 for review in open_ids}  # each reminded once, by one janitor
    assert sum(r["held"] for r in results) == len(open_ids)  # each held once
    database = pm.init_db(fresh_target)
    for review in pm.ReviewLog.select().where(pm.ReviewLog.id.in_(open_ids)):
        assert (review.action, review.auto_held, review.responded_at) == (
            ReviewAction.hold, True, None)
        assert (review.sent_at + 2 * 60 * MINUTE < review.reminded_at
                <= review.sent_at + 2 * 60 * MINUTE + MINUTE)
    assert list(
        pm.ReviewLog.select().where(
            pm.ReviewLog.action.is_null(False) & pm.ReviewLog.id.not_in(open_ids))
        .order_by(pm.ReviewLog.id).dicts()) == answered  # the answered reviews are untouched
    # nothing uploaded or discarded
    assert {run.status for run in pm.PipelineRun.select()} == {RunStatus.review}
    # the janitors met: one was refused a review the other marked
    assert sum(r["refused"] for r in results) > 0


# --- upload once, and the daily cap ---------------------------------------------------------------

UPLOADERS = 4
CAP_PER_DAY = 20  # youtube.max_uploads_per_day's default


def _uploader(target, barrier, n, out, rows):
    """Try to upload every video of `rows` ([model name, id]), in an order of its own, twice over;
    record the uploads this process made and how each other try ended."""
    pm.init_db(target)
    rng = random.Random(n)
    rows = [row for _ in range(2) for row in rng.sample(rows, len(rows))]
    uploaded, ends, slots, errors = [], collections.Counter(), [], []
    barrier.wait()
    for name, row_id in rows:
        try:
            row = getattr(pm, name).get_by_id(row_id)
            row.start_upload()
            video_id = f"{name}{row_id}-by-{n}"
            row.mark_uploaded(video_id)
            uploaded.append([name, row_id, video_id])
        except pm.UploadCapReached as exc:
            ends["cap"] += 1
            slots.append(exc.next_slot.isoformat())
        except (pm.AlreadyUploaded, pm.UploadInDoubt, pm.InvalidTransition) as exc:
            ends[type(exc).__name__] += 1
        except Exception as exc:
            errors.append(_error(exc))
    _dump(out, uploaded=uploaded, ends=ends, slots=slots, errors=errors)


def _run_to(status, shorts):
    """A run taken through the queue to `status` (approved, rejected or review), with `shorts`
    shorts."""
    run = pm.PipelineRun.claim_next("maker")
    made = [pm.Short.create(pipeline_run=run) for _ in range(shorts)]
    review = pm.ReviewLog.request(run)
    if status is not RunStatus.review:
        review.respond("approve" if status is RunStatus.approved else "reject")
    return [["PipelineRun", run.id]] + [["Short", short.id] for short in made]


@pytest.mark.slow
def test_processes_uploading_at_once_upload_each_video_once_and_never_past_the_daily_cap(
        fresh_target, tmp_path):
    pm.init_db(fresh_target)
    _schedule("gaming", 10)
    # 32 videos: more than the cap
    approved = [row for _ in range(8) for row in _run_to(RunStatus.approved, 3)]
    # not approved: never uploaded
    never = _run_to(RunStatus.rejected, 2) + _run_to(RunStatus.review, 1)
    assert (pm.ConfigOverride.setting("youtube.max_uploads_per_day", 20) == CAP_PER_DAY
            == pm.Short.MAX_UPLOADS)

    results = _workers(_prepared(fresh_target), tmp_path, _uploader, UPLOADERS, approved + never)

    assert [r["errors"] for r in results] == [[]] * UPLOADERS
    uploads = [tuple(u) for r in results for u in r["uploaded"]]
    assert len(uploads) == CAP_PER_DAY  # the cap, reached, and not passed
    assert len({(name, row_id) for name, row_id, _ in uploads}) == CAP_PER_DAY  # each uploaded once
    assert not {(name, row_id) for name, row_id, _ in uploads} & {tuple(row) for row in never}
    pm.init_db(fresh_target)
    recorded = {(name, row.id, row.youtube_video_id) for name in ("PipelineRun", "Short")
                for row in getattr(pm, name).select().where(
                    getattr(pm, name).youtube_video_id.is_null(False))}
    assert recorded == set(uploads)  # the id each process was given is the one recorded
    started = sorted(at for name in ("PipelineRun", "Short") for (at,) in
                     getattr(pm, name).select(getattr(pm, name).upload_started_at)
                     .where(getattr(pm, name).upload_started_at.is_null(False)).tuples())
    assert len(started) == CAP_PER_DAY  # nothing else began uploading
    assert {
        run.status for run in pm.PipelineRun.select().where(
            pm.PipelineRun.youtube_video_id.is_null(False))} \
        <= {RunStatus.uploaded}
    # Every refusal at the cap said the next slot opens 24 hours after the oldest upload; it opens
    # then.
    next_slot = started[0] + datetime.timedelta(hours=24)
    slots = {datetime.datetime.fromisoformat(slot) for r in results for slot in r["slots"]}
    assert slots == {next_slot}
    assert (sum(r["ends"]["cap"] for r in results) > 0
            and sum(1 for r in results if r["uploaded"]) > 1)
    left = next(getattr(pm, name).get_by_id(row_id) for name, row_id in approved
                if (name, row_id) not in {(n, i) for n, i, _ in uploads})
    with pytest.raises(pm.UploadCapReached) as refused:
        left.start_upload(now=next_slot - datetime.timedelta(microseconds=1))
    assert refused.value.next_slot == next_slot
    left.start_upload(now=next_slot)
    assert pm.Short.next_upload_slot(now=next_slot) == started[1] + datetime.timedelta(hours=24)
