"""Renamed public names: the old name still works for one release, warns (DeprecationWarning) naming the new
one, and answers as the new name does; the new names do not warn."""
import warnings

import peewee
import pytest

import pipeline_models as pm


@pytest.fixture
def no_warnings():
    """Any warning raised in the block fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_config_override_get_with_a_key_warns_and_answers_as_value_of(database):
    pm.ConfigOverride.set("render.fps", 60)
    with pytest.warns(DeprecationWarning, match=r"ConfigOverride\.get\(key\) is deprecated: use "
                                                r"ConfigOverride\.value_of\(key\)"):
        old = pm.ConfigOverride.get("render.fps")
    with pytest.warns(DeprecationWarning):
        old_default = pm.ConfigOverride.get("missing", "fallback")
    with pytest.warns(DeprecationWarning):
        old_keyword = pm.ConfigOverride.get("missing", default=7)
    assert (old, old_default, old_keyword) == (60, "fallback", 7)
    assert (pm.ConfigOverride.value_of("render.fps"), pm.ConfigOverride.value_of("missing", "fallback"),
            pm.ConfigOverride.value_of("missing", default=7)) == (60, "fallback", 7)


def test_config_override_value_of_and_peewee_get_do_not_warn(database, no_warnings):
    pm.ConfigOverride.set("render.fps", 60)
    assert pm.ConfigOverride.value_of("render.fps") == 60 and pm.ConfigOverride.value_of("missing") is None
    row = pm.ConfigOverride.get(pm.ConfigOverride.key == "render.fps")  # peewee's Model.get: not deprecated
    assert row.value == 60
    with pytest.raises(pm.ConfigOverride.DoesNotExist):
        pm.ConfigOverride.get(pm.ConfigOverride.key == "missing")
    # The field keeps its name: value_of() is the lookup, ConfigOverride.value the column.
    assert isinstance(pm.ConfigOverride.value, peewee.Field)


def test_review_log_open_warns_and_returns_what_unanswered_returns(database):
    video, _ = pm.DiscoveredVideo.discover("v1")
    run = pm.PipelineRun.start(video)
    run = pm.PipelineRun.claim_next("w1")
    review = pm.ReviewLog.request(run)
    with pytest.warns(DeprecationWarning, match=r"ReviewLog\.open\(\) is deprecated: use ReviewLog\.unanswered\(\)"):
        old = pm.ReviewLog.open()
    assert isinstance(old, peewee.ModelSelect)
    assert [r.id for r in old] == [r.id for r in pm.ReviewLog.unanswered()] == [review.id]


def test_review_log_unanswered_does_not_warn(database, no_warnings):
    assert list(pm.ReviewLog.unanswered()) == []


def test_discovered_video_metadata_warns_and_is_discover_fields(database):
    with pytest.warns(DeprecationWarning, match=r"DiscoveredVideo\.METADATA is deprecated: use "
                                                r"DiscoveredVideo\.DISCOVER_FIELDS"):
        old = pm.DiscoveredVideo.METADATA
    assert old == pm.DiscoveredVideo.DISCOVER_FIELDS
    assert "title" in old and "youtube_video_id" not in old
    video, _ = pm.DiscoveredVideo.discover("v1", title="t")
    with pytest.warns(DeprecationWarning):  # read through a row too
        assert video.METADATA == pm.DiscoveredVideo.DISCOVER_FIELDS


def test_discovered_video_discover_fields_does_not_warn(database, no_warnings):
    video, created = pm.DiscoveredVideo.discover("v1", **dict.fromkeys(pm.DiscoveredVideo.DISCOVER_FIELDS))
    assert created and video.title is None


def test_the_deprecated_attribute_leaves_peewee_models_alone(database, no_warnings):
    """The descriptor is no field: the table and a subclass are as before, and making them reads nothing old."""
    assert "METADATA" not in pm.DiscoveredVideo._meta.fields

    class Found(pm.DiscoveredVideo):
        class Meta:
            table_name = "found_videos"

    assert Found._meta.sorted_field_names == pm.DiscoveredVideo._meta.sorted_field_names
    assert Found.DISCOVER_FIELDS == pm.DiscoveredVideo.DISCOVER_FIELDS
    with pytest.warns(DeprecationWarning, match=r"Found\.METADATA is deprecated: use Found\.DISCOVER_FIELDS"):
        assert Found.METADATA == pm.DiscoveredVideo.DISCOVER_FIELDS


@pytest.mark.parametrize("old", ["CharField", "TextField", "IntegerField", "BigIntegerField", "FloatField",
                                 "BooleanField", "EnumField", "JSONField", "ForeignKeyField"])
def test_the_fields_that_shadowed_peewees_names_still_import_and_warn(old):
    from pipeline_models import fields

    with pytest.warns(DeprecationWarning, match=rf"pipeline_models\.fields\.{old} is deprecated: use Checked{old}"):
        renamed = getattr(fields, old)
    assert renamed is getattr(fields, f"Checked{old}")
    assert issubclass(renamed, getattr(peewee, old, peewee.Field))  # still the peewee field it refines
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        fields.Nonexistent


def test_init_db_migrate_is_upgrade(tmp_path, no_warnings):
    pm.init_db(str(tmp_path / "new.db"), upgrade=False)
    assert pm.db.get_tables() == []
    pm.db.close()
    with pytest.warns(DeprecationWarning, match=r"init_db\(migrate=\.\.\.\) is deprecated: use "
                                                r"init_db\(upgrade=\.\.\.\)"):
        pm.init_db(str(tmp_path / "old.db"), migrate=False)
    assert pm.db.get_tables() == []
    pm.db.close()
    with pytest.raises(TypeError, match="unexpected keyword argument 'migrat'"):
        pm.init_db(str(tmp_path / "typo.db"), migrat=False)


def test_the_new_field_names_do_not_warn(no_warnings):
    from pipeline_models.fields import CheckedCharField, CheckedForeignKeyField  # noqa: F401
