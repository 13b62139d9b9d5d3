"""ConfigOverride: runtime settings, any JSON value under a name, that override the pipeline's defaults."""
import warnings
from typing import Any, Callable, Dict

from ..fields import CheckedCharField, JSONTextField, UTCDateTimeField, utcnow
from .base import BaseModel


class ConfigOverride(BaseModel):
    """A runtime setting that overrides the pipeline's defaults; the value is any JSON value."""

    key = CheckedCharField(max_length=255, primary_key=True, help_text="the setting's name")
    value = JSONTextField(max_length=1024, help_text="any JSON value, at most 1024 characters of JSON")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it was last set")
    updated_by = CheckedCharField(max_length=64, default="system", help_text="who set it")

    class Meta:
        table_name = "config_overrides"

    # The settings the package itself reads, each with the check its value must pass (filled in by the models
    # that read them): set() refuses a bad value at once, rather than every worker failing on it later.
    CHECKS: Dict[str, Callable[[Any], Any]] = {}

    @classmethod
    def set(cls, key: str, value: Any, updated_by: str = "system") -> Any:
        """Store `value` (anything JSON can hold) under `key`, replacing what was there; returns the value.

        A key the package reads (CHECKS) takes only a value it can use, or None for its default (ValueError
        naming the key otherwise).
        """
        if isinstance(key, str) and not key.strip():  # a blank name cannot be asked for again by anyone
            raise ValueError(f"ConfigOverride.key: give the setting a name, not {key!r}")
        check = cls.CHECKS.get(key) if isinstance(key, str) else None
        if check is not None and value is not None:  # null stands for the package's default
            check(value)
        row = dict(key=key, value=value, updated_by=updated_by, updated_at=utcnow())
        keep = [cls.value, cls.updated_by, cls.updated_at]
        cls.insert(**row).on_conflict(conflict_target=[cls.key], preserve=keep).execute()
        return value

    # Not value(key): ConfigOverride.value is the field holding the value (ConfigOverride.value == 3).
    @classmethod
    def value_of(cls, key: str, default: Any = None) -> Any:
        """The value stored under `key`, with its JSON type; `default` when there is none."""
        row = cls.select(cls.value).where(cls.key == key).first()
        return default if row is None else row.value

    @classmethod
    def get(cls, *query: Any, **filters: Any) -> Any:
        """Deprecated `ConfigOverride.get(key, default=None)`: use value_of(key, default).

        Given peewee expressions instead of a key string, this is peewee's Model.get.
        """
        if not (query and isinstance(query[0], str)):
            return super().get(*query, **filters)
        warnings.warn("ConfigOverride.get(key) is deprecated: use ConfigOverride.value_of(key)", DeprecationWarning,
                      stacklevel=2)
        key, *rest = query
        default = rest[0] if rest else filters.pop("default", None)
        return cls.value_of(key, default)

    @classmethod
    def as_dict(cls) -> Dict[str, Any]:
        """Every override as {key: value}."""
        return {row.key: row.value for row in cls.select(cls.key, cls.value).order_by(cls.key)}
