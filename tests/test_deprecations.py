"""Renamed public names: the old name still works for one release, warns (DeprecationWarning)
naming the new one, in one wording (errors.deprecated), at the caller's line, and answers as the new
name does; the new names do not warn. The old domain's names are gone (0.2.0)."""
import ast
import importlib
import warnings
from pathlib import Path

import peewee
import pytest

import pipeline_models as pm


def said(record, old, new):
    """The one warning in `record`: deprecated()'s wording of `old` and `new`, at this file."""
    assert [w.category for w in record] == [DeprecationWarning]
    wording = f"{old} is deprecated since 0.2.0 and goes in the next release: use {new}"
    assert str(record[0].message) == wording
    assert record[0].filename == __file__  # the caller's line, not the package's
    return True


@pytest.fixture
def no_warnings():
    """Any warning raised in the block fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_config_override_get_with_a_key_warns_and_answers_as_value_of(database):
    pm.ConfigOverride.set("render.fps", 60)
    with pytest.warns(DeprecationWarning) as record:
        old = pm.ConfigOverride.get("render.fps")
    assert said(record, "ConfigOverride.get(key)", "ConfigOverride.value_of(key)")
    with pytest.warns(DeprecationWarning):
        old_default = pm.ConfigOverride.get("missing", "fallback")
    with pytest.warns(DeprecationWarning):
        old_keyword = pm.ConfigOverride.get("missing", default=7)
    assert (old, old_default, old_keyword) == (60, "fallback", 7)
    assert (pm.ConfigOverride.value_of("render.fps"), pm.ConfigOverride.value_of("missing",
                                                                                 "fallback"),
            pm.ConfigOverride.value_of("missing", default=7)) == (60, "fallback", 7)


def test_config_override_value_of_and_peewee_get_do_not_warn(database, no_warnings):
    pm.ConfigOverride.set("render.fps", 60)
    assert (pm.ConfigOverride.value_of("render.fps") == 60
            and pm.ConfigOverride.value_of("missing") is None)
    # peewee's Model.get: not deprecated
    row = pm.ConfigOverride.get(pm.ConfigOverride.key == "render.fps")
    assert row.value == 60
    with pytest.raises(pm.ConfigOverride.DoesNotExist):
        pm.ConfigOverride.get(pm.ConfigOverride.key == "missing")
    # The field keeps its name: value_of() is the lookup, ConfigOverride.value the column.
    assert isinstance(pm.ConfigOverride.value, peewee.Field)


def test_review_log_unanswered_does_not_warn(database, no_warnings):
    assert list(pm.ReviewLog.unanswered()) == []


def test_discover_fields_do_not_warn(database, no_warnings):
    values = dict(title="t", channel_name="c", channel_id="UC", url="u", category_id=20,
                  duration_seconds=60, view_count=1, like_count=1, comment_count=1,
                  view_velocity=1.0, viral_score=1.0, niche="gaming", discovery_source="reddit",
                  content_id_risk="low", published_at=pm.utcnow())
    assert sorted(values) == sorted(pm.DiscoveredVideo.DISCOVER_FIELDS)
    video, created = pm.DiscoveredVideo.discover("v1", **values)
    assert created and video.title == "t"


# 0.2.0 replaced the one-run-per-video domain with the pipeline's, with no alias layer: the names
# deprecated in 0.1.x that belonged to it went with it (the CHANGELOG says what replaced each), and
# so did the old domain's.
REMOVED = [
    (pm.DiscoveredVideo, "METADATA"),  # deprecated in 0.1.x: DISCOVER_FIELDS
    (pm.ReviewLog, "open"),  # deprecated in 0.1.x: unanswered()
    (pm, "VideoStatus"),  # Processed
    (pm.enums, "VideoStatus"),
    (pm.PipelineRun, "start"),  # schedule(niche, cycle_start)
    (pm.PipelineRun, "VIDEO_AFTER"),  # runs no longer move their videos
    (pm.PipelineRun, "attempts"),  # retry_count
    (pm.PipelineRun, "last_error"),  # error_message
    (pm.PipelineRun, "finished_at"),  # completed_at
    (pm.PipelineRun, "discovered_video"),  # a run is a niche's cycle; its clips name their videos
    (pm.DiscoveredVideo, "youtube_video_id"),  # video_id
    (pm.DiscoveredVideo, "status"),  # processed
    (pm.Clip, "start_seconds"),  # start_time_seconds
    (pm.Clip, "file_path"),  # clip_file_path
]


@pytest.mark.parametrize("owner, name", REMOVED, ids=lambda x: getattr(x, "__name__", x))
def test_the_old_domains_names_are_gone_not_aliased(owner, name, no_warnings):
    assert not hasattr(owner, name)
    if isinstance(owner, type):
        assert name not in owner._meta.fields
        with pytest.raises(TypeError, match=f"has no settable field {name}"):
            owner(**{name: 1})


@pytest.mark.parametrize("old", ["CharField", "TextField", "IntegerField", "BigIntegerField",
                                 "FloatField", "BooleanField", "EnumField", "JSONField",
                                 "ForeignKeyField"])
def test_the_fields_that_shadowed_peewees_names_still_import_and_warn(old):
    from pipeline_models import fields

    with pytest.warns(DeprecationWarning) as record:
        renamed = getattr(fields, old)
    assert said(record, f"pipeline_models.fields.{old}", f"pipeline_models.fields.Checked{old}")
    assert renamed is getattr(fields, f"Checked{old}")
    # still the peewee field it refines
    assert issubclass(renamed, getattr(peewee, old, peewee.Field))
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        fields.Nonexistent


def test_init_db_migrate_is_upgrade(tmp_path, no_warnings):
    pm.init_db(str(tmp_path / "new.db"), upgrade=False)
    assert pm.db.get_tables() == []
    pm.db.close()
    with pytest.warns(DeprecationWarning) as record:
        pm.init_db(str(tmp_path / "old.db"), migrate=False)
    assert said(record, "init_db(migrate=...)", "init_db(upgrade=...)")
    assert pm.db.get_tables() == []
    pm.db.close()
    with pytest.raises(TypeError, match="unexpected keyword argument 'migrat'"):
        pm.init_db(str(tmp_path / "typo.db"), migrat=False)


def test_the_new_field_names_do_not_warn(no_warnings):
    from pipeline_models.fields import CheckedCharField, CheckedForeignKeyField  # noqa: F401


@pytest.mark.parametrize("old, home, name", [("table", "pipeline_models.cli_output", "table"),
                                             ("UTC", "pipeline_models.fields", "UTC")])
def test_the_cli_modules_old_names_warn_and_answer_from_their_home(old, home, name):
    from pipeline_models import cli

    home = importlib.import_module(home)
    with pytest.warns(DeprecationWarning) as record:
        moved = getattr(cli, old)
    assert said(record, f"pipeline_models.cli.{old}", f"{home.__name__}.{name}")
    assert moved is getattr(home, name)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        cli.nonexistent


def test_the_new_homes_do_not_warn(no_warnings):
    from pipeline_models.cli_output import table  # noqa: F401
    from pipeline_models.fields import UTC  # noqa: F401


def test_every_deprecation_goes_through_one_helper():
    """No module but errors.py names DeprecationWarning in its code: errors.deprecated() warns."""
    package = Path(pm.__file__).parent
    naming = {str(path.relative_to(package)) for path in package.rglob("*.py")
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Name) and node.id == "DeprecationWarning"}
    assert naming == {"errors.py"}
