"""Several processes on one database at once (a SQLite file, or PostgreSQL): no duplicates, no run
claimed twice, one run per niche and cycle however many schedulers fire, no "database is locked"."""
import datetime
import json
import time
import multiprocessing
import random

import pytest

import pipeline_models as pm
from conftest import CYCLE_START

PROCESSES = 6
spawn = multiprocessing.get_context("spawn")
CYCLES = 40  # per niche, in the scheduling race
NICHES = ("gaming", "sports")


def _run_workers(target, tmp_path, worker, *args):
    """Start PROCESSES processes on `worker(target, barrier, n, out, *args)` and return their JSON
    results."""
    barrier = spawn.Barrier(PROCESSES)
    procs = [spawn.Process(target=worker, args=(str(target), barrier, n,
                                                str(tmp_path / f"out{n}.json"), *args))
             for n in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0, f"worker exited {proc.exitcode}"
    return [json.loads((tmp_path / f"out{n}.json").read_text()) for n in range(PROCESSES)]


def _prepared(target):
    """`target` made (migrated) and left unbound, so that the workers open it themselves."""
    pm.init_db(target).close()
    pm.db.initialize(None)
    return target


def _discover_worker(target, barrier, n, out, ids):
    pm.init_db(target)
    random.Random(n).shuffle(ids)
    created, errors = [], []
    barrier.wait()
    for video_id in ids:
        try:
            video, was_created = pm.DiscoveredVideo.discover(video_id, title=f"seen by {n}",
                                                             channel_name="c", channel_id="UCc",
                                                             niche="gaming", view_count=n)
            if was_created:
                created.append(video_id)
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as fh:
        json.dump({"created": created, "errors": errors}, fh)


def _claim_worker(target, barrier, n, out):
    pm.init_db(target)
    claimed, errors = [], []
    barrier.wait()
    while True:
        try:
            run = pm.PipelineRun.claim_next(f"worker-{n}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if run is None:
            break
        claimed.append(run.id)
        run.advance(pm.RunStatus.review)  # a write of its own between claims, like a real worker
        # and work outside any transaction: SQLite's busy handler lets a waiting process in
        time.sleep(0.002)
    with open(out, "w") as fh:
        json.dump({"claimed": claimed, "errors": errors}, fh)


def _cycle(i):
    return CYCLE_START + datetime.timedelta(hours=6 * i)


def _schedule_worker(target, barrier, n, out):
    """Fire every niche's scheduler for each cycle, in the same order as the other processes (so
    that they collide on each cycle), twice: {"niche cycle": run id}."""
    pm.init_db(target)
    runs, errors = {}, []
    barrier.wait()
    for _ in range(2):  # the second time, every cycle has its run: the same one must come back
        for i in range(CYCLES):
            for niche in NICHES:
                try:
                    run = pm.PipelineRun.schedule(niche, _cycle(i))
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if runs.setdefault(f"{niche} {i}", run.id) != run.id:
                    errors.append(f"{niche} cycle {i}: run {run.id}, after run "
                                  f"{runs[f'{niche} {i}']}")
    with open(out, "w") as fh:
        json.dump({"runs": runs, "errors": errors}, fh)


@pytest.mark.slow
def test_concurrent_discovery_never_duplicates_a_video(fresh_target, tmp_path):
    ids = [f"vid{i:04d}" for i in range(60)]
    results = _run_workers(_prepared(fresh_target), tmp_path, _discover_worker, ids)

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    created = [video_id for r in results for video_id in r["created"]]
    assert sorted(created) == ids  # each video created exactly once, by one process
    pm.init_db(fresh_target)
    assert pm.DiscoveredVideo.select().count() == len(ids)


@pytest.mark.slow
def test_concurrent_claims_take_every_run_exactly_once(fresh_target, tmp_path):
    pm.init_db(fresh_target)
    with pm.db.atomic():
        for i in range(150):
            pm.PipelineRun.schedule("gaming", _cycle(i))
    results = _run_workers(_prepared(fresh_target), tmp_path, _claim_worker)

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    claimed = [run_id for r in results for run_id in r["claimed"]]
    assert len(claimed) == 150 and len(set(claimed)) == 150
    assert sum(1 for r in results if r["claimed"]) > 1  # the work really was shared
    pm.init_db(fresh_target)
    runs = list(pm.PipelineRun.select())
    assert {r.status for r in runs} == {pm.RunStatus.review}
    assert {r.retry_count for r in runs} == {0}  # claimed once each, never requeued
    by_worker = {r.id: r.worker for r in runs}
    for n, result in enumerate(results):
        assert all(by_worker[run_id] == f"worker-{n}" for run_id in result["claimed"])


@pytest.mark.slow
def test_schedulers_firing_at_once_make_one_run_per_niche_and_cycle(fresh_target, tmp_path):
    results = _run_workers(_prepared(fresh_target), tmp_path, _schedule_worker)

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    # every process got the same run for a cycle
    assert all(r["runs"] == results[0]["runs"] for r in results)
    assert len(results[0]["runs"]) == len(NICHES) * CYCLES
    pm.init_db(fresh_target)
    runs = {f"{r.niche} {(r.cycle_start - CYCLE_START) // datetime.timedelta(hours=6)}": r.id
            for r in pm.PipelineRun.select()}
    assert pm.PipelineRun.select().count() == len(NICHES) * CYCLES and runs == results[0]["runs"]
    assert {(r.status, r.cycle_end - r.cycle_start) for r in pm.PipelineRun.select()} == {
        (pm.RunStatus.pending, datetime.timedelta(hours=6))}


def _first_start_worker(path, barrier, n, out):
    barrier.wait()
    try:
        applied = pm.init_db(path) and pm.migrate()
        result = {"errors": [], "applied": applied}
    except Exception as exc:
        result = {"errors": [f"{type(exc).__name__}: {exc}"]}
    with open(out, "w") as fh:
        json.dump(result, fh)


@pytest.mark.slow
def test_processes_starting_at_once_on_a_new_file_migrate_it_once(tmp_path):
    results = _run_workers(tmp_path / "shared.db", tmp_path, _first_start_worker)
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    database = pm.init_db(tmp_path / "shared.db")
    names = [row[0] for row in database.execute_sql("SELECT name FROM schema_migration ORDER BY "
                                                    "id")]
    assert names == [m.stem for m in sorted(pm.MIGRATIONS_DIR.glob("0*.py"))]  # each once, in order
    assert len(names) == 8
