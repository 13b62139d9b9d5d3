"""Peewee fields that refuse bad values with a ValueError naming the field, the same on every
backend.

SQLite stores almost anything in any column (a float NaN becomes NULL, '5' in an integer column
stays text, an over-long string is kept whole) while PostgreSQL refuses some of it with its own
errors. These fields check each value in Python before it is written, so both backends accept and
refuse the same values. Range rules (no negative counts, 0 <= ctr <= 1) are CHECK constraints on the
models instead.

Text anywhere (a text column, or a string or key inside a JSON value) may not hold NUL, which
PostgreSQL cannot store, nor a lone surrogate such as '\\udcff' (how Python decodes an undecodable
byte of a file name), which is not valid Unicode and cannot be encoded for either database. JSON
values may nest at most JSON_MAX_DEPTH lists and dicts deep.
"""
import datetime
import functools
import json
import math
import operator
import os
import reprlib
from typing import Any, Callable, List, Optional, Set

import peewee

from .errors import renamed_attributes
from playhouse import fields as pw_fields

UTC = datetime.timezone.utc
# NaN and Infinity are not JSON; characters are kept as they are (a length limit counts characters,
# not escapes).
_dumps = functools.partial(json.dumps, allow_nan=False, ensure_ascii=False)
_tzinfo = operator.attrgetter("tzinfo")
_iso_microseconds = operator.methodcaller("isoformat", " ", "microseconds")
_first_26 = operator.itemgetter(slice(26))

# The most lists and dicts a JSON value may hold inside one another ([[1]] is 2 deep). Real scripts
# and settings need a handful of levels; a deeper value is a bug or an attack. The limit keeps the
# checks, json.dumps and json.loads (on this and on any other machine reading the value back) far
# from Python's recursion limit of 1000, which deeper values hit as a RecursionError.
JSON_MAX_DEPTH = 100

# PostgreSQL's jsonb keeps numbers as NUMERIC and prints 1e+16 as 10000000000000000, which reads
# back as an int: floats this large or larger would not come back as floats.
_JSONB_INT_FLOATS = 1e16


def utcnow() -> datetime.datetime:
    """The current time as an aware UTC datetime: the default of every timestamp column."""
    return datetime.datetime.now(UTC)


# The times an operation's `now` may be: the operations add and subtract up to a year (a lease, a
# delay, a retention period), which must not run off the calendar (datetime's years 1 to 9999).
EARLIEST_NOW = datetime.datetime(1970, 1, 1, tzinfo=UTC)
LATEST_NOW = datetime.datetime(9000, 1, 1, tzinfo=UTC)


def checked_now(operation: str, value: Optional[datetime.datetime]) -> datetime.datetime:
    """The `now` an operation was given (default: the clock): an aware datetime from 1970 to 9000,
    or a ValueError naming it."""
    if value is None:
        return utcnow()
    if not isinstance(value, datetime.datetime) or value.utcoffset() is None:
        raise ValueError(f"{operation}: now must be an aware datetime, e.g. "
                         f"datetime.now(timezone.utc), not {value!r}")
    if not EARLIEST_NOW <= value <= LATEST_NOW:
        raise ValueError(f"{operation}: now must be between {EARLIEST_NOW:%Y-%m-%d} and "
                         f"{LATEST_NOW:%Y-%m-%d} UTC, not {value.isoformat(' ')}")
    return value


class _Checked:
    """Mixin: `check(value)` runs on every value written; its error is re-raised naming the
    field."""

    def check(self, value: Any) -> Any:
        return value

    def label(self) -> str:
        """'Model.field', or the bare field name before the field is bound to a model."""
        model = getattr(self, "model", None)
        return f"{model.__name__}.{self.name}" if model is not None else str(self.name)

    def db_value(self, value: Any) -> Any:
        if value is not None and not isinstance(value, peewee.Node):
            try:
                value = self.check(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"{self.label()}: {exc}") from None
        return super().db_value(value)

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        """The parameters a bulk INSERT binds for these non-NULL values (of these types), or None to
        convert them one by one.

        A fast path checks a whole column at once with C-level built-ins (type sets, min/max, joins)
        and must accept only what db_value accepts unchanged; anything unusual goes one by one
        through slow_value, which accepts and refuses exactly what db_value does.
        """
        return None

    def slow_value(self, value: Any) -> Any:
        """One value as a bulk INSERT binds it: db_value's result."""
        return self.db_value(value)


def _type_name(value: Any) -> str:
    return type(value).__name__


_reprs = reprlib.Repr()
_reprs.maxlevel, _reprs.maxstring, _reprs.maxother = 3, 80, 80


def shown(value: Any) -> str:
    """A repr of `value` short enough for an error message, whatever its size or depth.

    repr() itself raises RecursionError on deeply nested lists, and ValueError on ints of over 4300
    digits.
    """
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an int of {value.bit_length()} bits"
    try:
        return _reprs.repr(value)
    except (ValueError, RecursionError):  # e.g. a huge int inside a list
        return f"a {_type_name(value)}"


# The largest whole number a BIGINT column or a LIMIT holds: the bound of an argument with no other.
MAX_WHOLE = 2 ** 63 - 1


def whole_number(what: str, lowest: int, highest: int = MAX_WHOLE,
                 unit: str = "") -> Callable[[Any], int]:
    """The check of a whole number (of `unit`), `lowest` to `highest`: a ValueError naming `what`.

    `what` is an argument ("Analytics.top: n") or a setting (ConfigOverride 'queue.max_attempts'):
    the one check of whole-number arguments and settings, so that every refusal reads the same.
    """
    kind = f"a whole number of {unit}" if unit else "a whole number"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            # "1 or more" unless the number is past the (64-bit) top: then the top is said too.
            huge = isinstance(value, int) and value > highest
            bounds = (f", {lowest} or more" if highest == MAX_WHOLE and not huge
                      else f" from {lowest} to {highest}")
            raise ValueError(f"{what} must be {kind}{bounds}, not {shown(value)}")
        return value

    return check


def checked_duration(operation: str, value: Any) -> datetime.timedelta:
    """A positive timedelta of at most a year, or a ValueError naming the operation."""
    if not isinstance(value, datetime.timedelta):
        raise TypeError(f"{operation}: older_than must be a datetime.timedelta, e.g. "
                        f"timedelta(minutes=10), not {type(value).__name__}")
    if not datetime.timedelta(0) < value <= datetime.timedelta(days=366):
        raise ValueError(f"{operation}: older_than must be more than zero and at most a year, not "
                         f"{value}")
    return value


def escape_unstorable(text: Any) -> Any:
    """`text` with each NUL written as \\x00 and each lone surrogate as its escape (\\udcff); other
    values as they are.

    The result is storable in any text column; everything else in the text is kept as it is. This is
    Python's 'backslashreplace' applied to those characters only (ErrorLog stores exceptions this
    way).
    """
    if not isinstance(text, str):
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():  # isascii() is O(1) in CPython: ASCII text costs nothing more
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _surrogate(text: str) -> Optional[int]:
    """The position of the first lone surrogate in `text`, or None when it is valid Unicode."""
    if text.isascii():
        return None
    try:
        # fails exactly on lone surrogates: every other code point has a UTF-8 form
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


_SURROGATE_HINT = ("not valid Unicode, so no database can store it (an undecodable byte of a file "
                   "name decodes to one); decode bytes with errors='replace', or store "
                   "pipeline_models.fields.escape_unstorable(text)")


def _check_text(value: Any, max_length: Optional[int]) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {_type_name(value)} {shown(value)}")
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters (PostgreSQL cannot store them)")
    bad = _surrogate(value)
    if bad is not None:
        raise ValueError(f"text holds the lone surrogate {value[bad]!r} at position {bad}: "
                         f"{_SURROGATE_HINT}")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"text of {len(value)} characters is longer than the limit of "
                         f"{max_length}")
    return value


def _plain_text(values: List[Any], types: Set[type], max_length: Optional[int]) -> bool:
    """True when every value is valid Unicode text without NUL, within max_length: what _check_text
    passes."""
    if types != {str}:
        return False
    joined = "".join(values)  # one scan of the column in C, not a call per value
    if "\x00" in joined or _surrogate(joined) is not None:
        return False
    return max_length is None or max(map(len, values)) <= max_length


class CheckedCharField(_Checked, peewee.CharField):
    """A VARCHAR whose length limit is enforced on SQLite too."""

    def check(self, value: Any) -> str:
        return _check_text(value, self.max_length)

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        return values if _plain_text(values, types, self.max_length) else None


class CheckedTextField(_Checked, peewee.TextField):
    """Unlimited text; only str (or a path) is accepted."""

    def check(self, value: Any) -> str:
        return _check_text(value, None)

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        return values if _plain_text(values, types, None) else None


def _check_int(value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_type_name(value)} {shown(value)}")
    limit = 2 ** (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"{shown(value)} does not fit in a {bits}-bit integer column")
    return int(value)


def _plain_ints(values: List[Any], types: Set[type], bits: int) -> Optional[List[Any]]:
    limit = 2 ** (bits - 1)
    ok = types == {int} and -limit <= min(values) and max(values) < limit
    return values if ok else None


class CheckedIntegerField(_Checked, peewee.IntegerField):
    """A 32-bit integer (PostgreSQL INTEGER); bools, floats and strings are refused."""

    def check(self, value: Any) -> int:
        return _check_int(value, 32)

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        return _plain_ints(values, types, 32)


class CheckedBigIntegerField(_Checked, peewee.BigIntegerField):
    """A 64-bit integer, for counters that outgrow 2**31 (view counts do)."""

    def check(self, value: Any) -> int:
        return _check_int(value, 64)

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        return _plain_ints(values, types, 64)


class CheckedFloatField(_Checked, peewee.DoubleField):
    """A finite 8-byte float (DOUBLE PRECISION: peewee's FloatField is a 4-byte REAL on PostgreSQL).

    NaN and infinity are refused: SQLite would store NaN as NULL.
    """

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {_type_name(value)} {shown(value)}")
        # OverflowError for an int beyond the float range: refused naming the field
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{number} is not a finite number")
        # stored, it would read back as another number
        if isinstance(value, int) and number != value:
            raise ValueError(f"the integer {shown(value)} has no exact float "
                             f"(it would be stored as {number!r}); "
                             f"pass float(value) to accept the rounding")
        return number

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        # A sum of floats is finite only if every term is (an overflowing sum just takes the slow
        # path).
        ok = types == {float} and math.isfinite(sum(values))
        return values if ok else None


class CheckedBooleanField(_Checked, peewee.BooleanField):
    """A boolean that only takes True or False (peewee would turn the string 'false' into True)."""

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected True or False, got {_type_name(value)} {shown(value)}")
        return value

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        return values if types == {bool} else None


class _EnumChecks(_Checked):
    """An enum column with a matching CHECK constraint; takes the member or its value, reads back
    the member."""

    def bind(self, model: Any, name: str, set_attribute: bool = True) -> None:
        super().bind(model, name, set_attribute)
        allowed = ", ".join(repr(member.value) for member in self.enum_class)
        # The CHECK also guards raw SQL and other programs writing to the same database.
        self.constraints = [*(self.constraints or ()),
                            peewee.Check(f'"{self.column_name}" IN ({allowed})')]

    def check(self, value: Any) -> Any:
        kind = self.enum_value_type
        # Anything else is no member (True is no 1 here), and the enum's own error would repr it
        # whole.
        if isinstance(value, kind) and not isinstance(value, bool):
            try:
                return self.enum_class(value).value
            except ValueError:
                pass
        allowed = ", ".join(str(member.value) for member in self.enum_class)
        raise ValueError(f"{shown(value)} is not one of: {allowed}")

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        # Members hash and compare as their values: one dict maps both to the plain value stored.
        plain = {m.value: m.value for m in self.enum_class}
        kind = self.enum_value_type
        if (not all(issubclass(t, kind) and not issubclass(t, bool) for t in types)
                or not set(values) <= plain.keys()):
            return None
        return list(map(plain.__getitem__, values))


class CheckedEnumField(_EnumChecks, pw_fields.EnumField):
    """A str-valued enum column (VARCHAR) with a matching CHECK constraint."""


class CheckedIntEnumField(_EnumChecks, pw_fields.IntEnumField):
    """An int-valued enum column (INTEGER) with a matching CHECK constraint: takes 1 or the
    member."""


def _check_json(value: Any, jsonb: bool) -> None:
    """Refuse a JSON value nested deeper than JSON_MAX_DEPTH, with NUL or a lone surrogate in a
    string or key, or (when the column is jsonb on PostgreSQL) a float PostgreSQL would read back as
    an int.

    Runs before json.dumps, which would raise RecursionError on deep values. A circular value is
    refused as too deep.
    """
    strings: List[str] = []
    _walk_json(value, 1, strings, jsonb)
    text = "".join(strings)
    if "\x00" in text:
        raise ValueError("a JSON string or key may not contain NUL characters "
                         "(PostgreSQL cannot store them: jsonb refuses \\u0000)")
    bad = _surrogate(text)
    if bad is not None:
        raise ValueError(f"a JSON string or key holds the lone surrogate {text[bad]!r}: "
                         f"{_SURROGATE_HINT}")


def _walk_json(value: Any, depth: int, strings: List[str], jsonb: bool) -> None:
    """Collect the strings and keys of `value`, at `depth` lists and dicts deep, checking depth and
    floats."""
    if isinstance(value, str):
        strings.append(value)
    elif isinstance(value, float):
        # json.dumps refuses NaN, inf
        if jsonb and math.isfinite(value) and abs(value) >= _JSONB_INT_FLOATS:
            raise ValueError(f"the float {value!r} would read back from PostgreSQL's jsonb as an "
                             "int; store int(value), or the number as a string")
    elif isinstance(value, tuple):
        raise ValueError(f"a tuple would read back as a list: store the list {list(value)!r}"[:200])
    elif isinstance(value, (list, dict)):
        if depth > JSON_MAX_DEPTH:
            raise ValueError(f"JSON nested more than {JSON_MAX_DEPTH} lists and dicts deep is "
                             "refused (a circular value is endlessly deep); flatten it")
        if isinstance(value, dict):
            for key in value:
                # json.dumps writes the key 1 as "1": it would read back changed
                if not isinstance(key, str):
                    raise ValueError(f"a JSON key must be a string, not the {type(key).__name__} "
                                     f"{key!r}: it would read back as a string"[:200])
            strings.extend(value)
            value = value.values()
        for item in value:
            _walk_json(item, depth + 1, strings, jsonb)


class CheckedJSONField(_Checked, peewee.JSONField):
    """JSON (TEXT on SQLite, JSONB on PostgreSQL); `types` limits what the top level may be.

    Floats of magnitude 1e16 or more are refused: jsonb would read them back as ints (1e16 as
    10000000000000000). Integers of any size round-trip on both backends.
    """

    def __init__(self, types: Optional[tuple] = None, **kwargs: Any) -> None:
        self.types = types
        kwargs.setdefault("dumps", _dumps)
        super().__init__(**kwargs)

    def check(self, value: Any) -> Any:
        if self.types is not None and not isinstance(value, self.types):
            names = " or ".join(t.__name__ for t in self.types)
            raise TypeError(f"expected {names}, got {_type_name(value)}")
        _check_json(value, jsonb=True)
        self._dumps(value)  # raises for what JSON cannot hold: sets, NaN, objects
        return value

    def slow_value(self, value: Any) -> Any:
        """The JSON text: a bulk INSERT wraps its parameter in json() on SQLite and casts it to
        jsonb on PostgreSQL."""
        # check() refuses what it must; insert_rows names the field
        return self._dumps(self.check(value))


class JSONTextField(_Checked, peewee.CharField):
    """Any JSON value, kept as its exact JSON text (at most max_length characters of it) on every
    backend.

    Read back with its Python type; None is stored as the JSON text null, so the column is never
    NULL. JSONB would normalise numbers: the float 1e16 would come back as the int
    10000000000000000. Text that is not JSON (written by other code into the VARCHAR) reads back as
    that string.
    """

    def check(self, value: Any) -> str:
        # VARCHAR could hold NUL as the text \u0000, but one rule for all JSON
        _check_json(value, jsonb=False)
        text = _dumps(value)  # refuses what JSON cannot hold: sets, NaN, objects
        if len(text) > self.max_length:
            raise ValueError(f"its JSON text has {len(text)} characters, more than the limit of "
                             f"{self.max_length}")
        return text

    def db_value(self, value: Any) -> Any:
        return "null" if value is None else super().db_value(value)

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError:
            return value


class CheckedForeignKeyField(_Checked, peewee.ForeignKeyField):
    """A foreign key that takes a row of its model, or that row's id as an int its id column can
    hold.

    peewee passes anything else on to the database, where SQLite stores the float 1.5 as it is and
    True as the id 1, and a too-large int or a string fails in the driver with an error that differs
    by backend.
    """

    def check(self, value: Any) -> Any:
        if isinstance(value, self.rel_model) or not isinstance(self.rel_field, peewee.AutoField):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected a {self.rel_model.__name__} or its id, "
                            f"got {_type_name(value)} {shown(value)}")
        # Serial ids are 32-bit on PostgreSQL (SQLite's are 64-bit): the smaller limit holds on
        # both.
        return _check_int(value, 64 if isinstance(self.rel_field, peewee.BigAutoField) else 32)

    def db_value(self, value: Any) -> Any:
        # A model instance is a peewee Node, which _Checked passes through: peewee would write its
        # id.
        if isinstance(value, peewee.Model) and not isinstance(value, self.rel_model):
            raise ValueError(f"{self.label()}: expected a {self.rel_model.__name__} or its id, "
                             f"got {_type_name(value)} {shown(value)}")
        return super().db_value(value)


def backend_of(database: Any) -> str:
    """Which backend `database` is (a proxy: the one bound): "postgres", "sqlite", "unbound"."""
    # The one backend check of the package: every "on PostgreSQL ..., on SQLite ..." asks this.
    database = getattr(database, "obj", database)
    if database is None:
        return "unbound"
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgres"
    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"
    return type(database).__name__  # another peewee backend: neither branch applies


def server_now(database: Any) -> str:
    """The DEFAULT clause of a timestamp column that is now, in the form the models store on
    `database`."""
    if backend_of(database) == "postgres":
        return "DEFAULT CURRENT_TIMESTAMP"
    # SQLite: the fixed-width UTC text check() writes (milliseconds are all its clock gives).
    return "DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


class UTCDateTimeField(_Checked, peewee.FieldDatabaseHook, peewee.DateTimeField):
    """An aware UTC datetime: TIMESTAMPTZ on PostgreSQL, fixed-width UTC text on SQLite.

    Any aware datetime is stored as the same instant in UTC and read back as an aware UTC datetime.
    Naive datetimes are refused: their meaning depends on the machine's clock settings. Text that
    older code stored without an offset is read as UTC.
    """

    field_type = "TIMESTAMPTZ"
    _as_text = True

    def __init__(self, *args: Any, server_now: bool = False, **kwargs: Any) -> None:
        # server_now: the column's DEFAULT is the database's clock too, for rows other programs
        # insert.
        self.server_now = server_now
        super().__init__(*args, **kwargs)

    def _db_hook(self, database: Any) -> None:
        if isinstance(database, peewee.Proxy):  # Model.bind_ctx() hands back the proxy on exit
            database = database.obj
        self._as_text = database is None or backend_of(database) == "sqlite"
        if self.server_now:
            self.constraints = [peewee.SQL(server_now(database))]

    def check(self, value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not isinstance(value, datetime.datetime):
            raise TypeError(f"expected an aware datetime, got {_type_name(value)} {shown(value)}")
        if value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value!r} has no timezone; pass an aware one, "
                "e.g. datetime.now(timezone.utc)"
            )
        value = value.astimezone(UTC)
        # One width and no offset: text order is then time order, in ORDER BY and comparisons.
        return value.replace(tzinfo=None).isoformat(" ", "microseconds") if self._as_text else value

    def adapt(self, value: Any) -> Any:
        # DateTimeField.adapt would parse check()'s text back into a naive datetime.
        return value

    def fast_values(self, values: List[Any], types: Set[type]) -> Optional[List[Any]]:
        if types != {datetime.datetime} or set(map(_tzinfo, values)) != {UTC}:
            return None
        if not self._as_text:
            return values
        # The same text check() makes: isoformat of an aware UTC time, less its "+00:00".
        return list(map(_first_26, map(_iso_microseconds, values)))

    def python_value(self, value: Any) -> Any:
        if isinstance(value, str):
            value = peewee.format_date_time(value, self.formats)
        if isinstance(value, datetime.datetime):
            return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
        return value


# 0.1.0's names, which shadowed peewee's (a reader of `CharField(...)` could not tell which one it
# was): they still import, with a DeprecationWarning, until the next release.
__getattr__ = renamed_attributes(__name__, {name: f"fields.Checked{name}" for name in (
    "CharField", "TextField", "IntegerField", "BigIntegerField", "FloatField", "BooleanField",
    "EnumField", "JSONField", "ForeignKeyField")})
