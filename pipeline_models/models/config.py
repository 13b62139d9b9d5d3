"""ConfigOverride: runtime settings, any JSON value under a dotted name, laid over the pipeline's
YAML config."""
import copy
import fnmatch
from typing import Any, Callable, Dict, Mapping, Optional

from ..errors import deprecated
from ..fields import CheckedCharField, JSONTextField, UTCDateTimeField, utcnow
from .base import BaseModel


class ConfigOverride(BaseModel):
    """A runtime setting that overrides the pipeline's defaults; the value is any JSON value."""

    key = CheckedCharField(max_length=255, primary_key=True, help_text="the setting's name")
    value = JSONTextField(max_length=1024,
                          help_text="any JSON value, at most 1024 characters of JSON")
    updated_at = UTCDateTimeField(default=utcnow, help_text="when it was last set")
    updated_by = CheckedCharField(max_length=64, default="system", help_text="who set it")

    class Meta:
        table_name = "config_overrides"

    # The settings the package itself reads, each with the check its value must pass (filled in by
    # the models that read them): set() refuses a bad value at once, rather than every worker
    # failing on it later. A key may hold `*` for one part of the name, e.g. "channels.*.paused".
    CHECKS: Dict[str, Callable[[Any], Any]] = {}

    @classmethod
    def _check_for(cls, key: str) -> Optional[Callable[[Any], Any]]:
        if key in cls.CHECKS:
            return cls.CHECKS[key]
        parts = key.split(".")
        for pattern, check in cls.CHECKS.items():
            if ("*" in pattern and len(pattern.split(".")) == len(parts)
                    and fnmatch.fnmatchcase(key, pattern)):
                return _naming(check, pattern, key)
        return None

    @classmethod
    def set(cls, key: str, value: Any, updated_by: str = "system") -> Any:
        """Store `value` (anything JSON can hold) under `key`, replacing what was there; returns the
        value.

        A key the package reads (CHECKS) takes only a value it can use, or None for its default
        (ValueError naming the key otherwise).
        """
        # a blank name cannot be asked for again by anyone
        if isinstance(key, str) and not key.strip():
            raise ValueError(f"ConfigOverride.key: give the setting a name, not {key!r}")
        if isinstance(key, str) and "" in key.split("."):  # overlay() could not lay it on a path
            raise ValueError(f"ConfigOverride.key: {key!r} has an empty part; name it as a dotted "
                             "path, e.g. 'channels.gaming.video.max_clips'")
        check = cls._check_for(key) if isinstance(key, str) else None
        if check is not None and value is not None:  # null stands for the package's default
            check(value)
        row = dict(key=key, value=value, updated_by=updated_by, updated_at=utcnow())
        keep = [cls.value, cls.updated_by, cls.updated_at]
        cls.insert(**row).on_conflict(conflict_target=[cls.key], preserve=keep).execute()
        return value

    # Not value(key): ConfigOverride.value is the field holding the value (ConfigOverride.value ==
    # 3).
    @classmethod
    def value_of(cls, key: str, default: Any = None) -> Any:
        """The value stored under `key`, with its JSON type; `default` when there is none."""
        row = cls.select(cls.value).where(cls.key == key).first()
        return default if row is None else row.value

    @classmethod
    def setting(cls, key: str, default: Any) -> Any:
        """The value the package uses for `key`: the override, checked as set() checks it, else
        `default`.

        A stored value the check refuses (written by other code, straight into the table) is a
        ValueError naming the key, rather than a worker acting on it.
        """
        value = cls.value_of(key)
        if value is None:
            return default
        check = cls._check_for(key)
        return value if check is None else check(value)

    @classmethod
    def overlay(cls, base: Mapping[str, Any]) -> Dict[str, Any]:
        """A new dictionary: the pipeline's config `base` (YAML and environment merged) with every
        override laid over it, the dotted key "channels.gaming.video.max_clips" setting
        base["channels"]["gaming"]["video"] ["max_clips"]; `base` is left as it was.

        Missing sections are made; an override of null leaves the value below it. A key whose path
        crosses a value that is not a dictionary, or that would replace a whole section with a
        value, is a ValueError naming the key.
        """
        if not isinstance(base, Mapping):
            raise TypeError("ConfigOverride.overlay: base must be the config dictionary, not "
                            f"{type(base).__name__}")
        merged = copy.deepcopy(dict(base))
        for key, value in cls.as_dict().items():
            if value is None:
                continue
            *path, last = key.split(".")
            node = merged
            for depth, part in enumerate(path, 1):
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"ConfigOverride.key: {key!r} crosses "
                                     f"{'.'.join(path[:depth])!r}, which is "
                                     f"{node!r}, not a section of the config")
            if isinstance(node.get(last), dict) and not isinstance(value, dict):
                raise ValueError(f"ConfigOverride.key: {key!r} would replace the section {key!r} "
                                 f"with {value!r}; "
                                 "override one of its keys, e.g. "
                                 f"{key + '.' + next(iter(node[last]), 'name')!r}")
            node[last] = value
        return merged

    @classmethod
    def get(cls, *query: Any, **filters: Any) -> Any:
        """Deprecated `ConfigOverride.get(key, default=None)`: use value_of(key, default).

        Given peewee expressions instead of a key string, this is peewee's Model.get.
        """
        if not (query and isinstance(query[0], str)):
            return super().get(*query, **filters)
        deprecated("ConfigOverride.get(key)", "ConfigOverride.value_of(key)")
        key, *rest = query
        default = rest[0] if rest else filters.pop("default", None)
        return cls.value_of(key, default)

    @classmethod
    def as_dict(cls) -> Dict[str, Any]:
        """Every override as {key: value}."""
        return {row.key: row.value for row in cls.select(cls.key, cls.value).order_by(cls.key)}


def setting_name(key: str) -> str:
    """How a refusal names the setting `key`: ConfigOverride 'queue.max_attempts'."""
    return f"ConfigOverride {key!r}"


def number(what: str, lowest: float, highest: float, unit: str = "") -> Callable[[Any], float]:
    """The check of a number (of `unit`) from `lowest` to `highest`, named as whole_number() names
    it."""
    kind = f"a number of {unit}" if unit else "a number"

    def check(value: Any) -> float:
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not lowest <= value <= highest):
            raise ValueError(f"{what} must be {kind} from {lowest} to {highest}, not {value!r}")
        return value

    return check


def flag(what: str) -> Callable[[Any], bool]:
    """The check of a value that is true or false, named as whole_number() names it."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{what} must be true or false, not {value!r}")
        return value

    return check


def _naming(check: Callable[[Any], Any], pattern: str, key: str) -> Callable[[Any], Any]:
    """A pattern's check whose refusal names the key it checked, not the pattern."""

    def named(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(str(exc).replace(repr(pattern), repr(key), 1)) from None

    return named
