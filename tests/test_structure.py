"""The package's shape, kept: no import cycle, no module over the line budget, peewee's private
parts used only through _peewee.py, no private name taken from another module, ARCHITECTURE.md
naming exactly the files there are, and this release's (0.2.0) public names importable where they
are listed."""
import ast
import importlib
import re
import warnings
from pathlib import Path

import peewee
import pytest

import pipeline_models
from pipeline_models import _peewee

PACKAGE = Path(pipeline_models.__file__).parent
ROOT = PACKAGE.parent
LINE_BUDGET = 600  # lines per module: past it, a module holds more than one reason to change


def modules():
    """Every module of the package, as (dotted name, path); migrations included."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_base(node, package):
    """The module a `from ... import` statement in `package` imports from, as a dotted name."""
    if not node.level:
        return node.module or ""
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imported(name, path, known):
    """The package modules `name` imports, at any depth of its code (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = import_base(node, package)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            # `from . import x` imports the module x, not the package
            targets.update(submodules or {base})
    return {t for t in targets if t in known and t != name}


def import_graph():
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph):
    """Every import cycle, each as the list of modules around it."""
    found, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_inside_the_package():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_count():
    graph = import_graph()
    # db.py asks for the models' tables through SCHEMA_MODELS, which the models fill: no import of
    # them.
    assert not any(
        name.startswith("pipeline_models.models") for name in graph["pipeline_models.db"])
    assert "pipeline_models.connections" in graph["pipeline_models.db"]


LINE_WIDTH = 100  # characters, as peewee's own source


def python_files():
    """Every Python file of the repository: the package, its tests, the benchmark, the examples,
    the docs' configuration."""
    return sorted(path for folder in ("pipeline_models", "tests", "bench", "examples", "docs")
                  for path in (ROOT / folder).rglob("*.py") if "_build" not in path.parts)


def long_lines(path):
    """(line number, length) of each line of `path` over LINE_WIDTH characters."""
    lines = enumerate(path.read_text().splitlines(), 1)
    return [(number, len(line)) for number, line in lines if len(line) > LINE_WIDTH]


def test_every_line_within_100_characters():
    found = {str(path.relative_to(ROOT)): long_lines(path) for path in python_files()}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_line_width_check_finds_a_long_line(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("x = 1\n" + "y = " + "9" * 97 + "\n")
    assert long_lines(path) == [(2, 101)]
    assert len(python_files()) > 60 and ROOT / "docs" / "conf.py" in python_files()


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_within_the_line_budget(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= LINE_BUDGET, (
        f"{name} has {lines} lines, over the budget of {LINE_BUDGET}: split it by concern")


def test_peewee_private_parts_still_exist():
    """What _peewee.py names is still in this peewee: a release that moved one fails here first."""
    assert issubclass(_peewee.Atomic, object) and hasattr(_peewee.Atomic, "__exit__")
    assert callable(getattr(_peewee.exception_wrapper, "__exit__", None))
    assert callable(getattr(peewee.FieldDatabaseHook, _peewee.DB_HOOK))
    assert callable(getattr(peewee.Database, _peewee.CONNECT_HOOK))
    database = peewee.SqliteDatabase(":memory:", pragmas={"cache_size": -1000})
    assert _peewee.pragmas(database) == {"cache_size": -1000}
    _peewee.set_pragmas(database, {"cache_size": -2000, "foreign_keys": 1})
    assert database.pragma("foreign_keys") == 1 and database.pragma("cache_size") == -2000
    assert _peewee.connection(database) is not None
    _peewee.forget_connection(database)
    assert _peewee.connection(database) is None
    assert _peewee.status_unknown(peewee.PostgresqlDatabase("never_connected")) is False
    postgres = peewee.PostgresqlDatabase("never_connected")
    _peewee.set_client_encoding(postgres, "UTF8")
    assert _peewee.client_encoding(postgres) == "UTF8"


PRIVATE_PEEWEE = re.compile(
    r"peewee\._[a-z]|__exception_wrapper__|\._pragmas\b|\._state\b|\._adapter\b")


@pytest.mark.parametrize("name", sorted(n for n in modules() if n != "pipeline_models._peewee"))
def test_no_other_module_reaches_behind_peewee(name):
    source = modules()[name].read_text()
    assert PRIVATE_PEEWEE.findall(source) == [], f"{name}: go through pipeline_models/_peewee.py"



# --- no private names across modules --------------------------------------------------------------

# peewee's private parts behind public names: the one module whose private names others may take.
SHIM = "pipeline_models._peewee"


def _private(attr):
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def _dotted(node):
    """`a.b.c` for a chain of names and attributes, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id] + parts[::-1])


def private_uses(name, source, known):
    """Where module `name` takes a private name of another package module, as (line, module, name).

    `from .x import _y` and `import x` (or `from . import x`) then `x._y`, at any depth of the code.
    """
    package = name if name in PACKAGES else name.rsplit(".", 1)[0]
    found, bound = [], {}  # bound: a local name -> the package module it is
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pipeline_models"):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            base = import_base(node, package)
            if not base.startswith("pipeline_models"):
                continue
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # a module: its attributes are checked below
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif base not in (SHIM, name) and _private(alias.name):
                    found.append((node.lineno, base, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = _dotted(node.value)
            if owner is None or owner.split(".")[0] not in bound:
                continue
            first, _, rest = owner.partition(".")
            module = f"{bound[first]}.{rest}" if rest else bound[first]
            if module in known and module not in (SHIM, name):
                found.append((node.lineno, module, node.attr))
    return sorted(found)


PACKAGES = {name for name, path in modules().items() if path.name == "__init__.py"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_takes_a_private_name_of_another(name):
    path = modules()[name]
    uses = private_uses(name, path.read_text(), modules())
    where = path.relative_to(ROOT)
    assert uses == [], "\n".join(f"{where}:{line}: {name} takes {attr} from {module}: "
                                  f"make it public where it belongs, or move it"
                                  for line, module, attr in uses)


def test_the_private_name_check_finds_each_way_in():
    source = """
from .db import _hidden, db
from . import _peewee, fields
from .models import base
import pipeline_models.connections
from ._peewee import exception_wrapper


def later():
    from .models.base import _inner
    return (fields._shown(db), base._sync, pipeline_models.connections._label, _peewee.connection,
            fields.__name__)
"""
    assert private_uses("pipeline_models.bulk", source, modules()) == [
        (2, "pipeline_models.db", "_hidden"), (10, "pipeline_models.models.base", "_inner"),
        (11, "pipeline_models.connections", "_label"), (11, "pipeline_models.fields", "_shown"),
        (11, "pipeline_models.models.base", "_sync")]
    # A module's own private names, and the shim's, are its own business.
    own = "from .db import _x\nfrom ._peewee import _y\n"
    assert private_uses("pipeline_models.db", own, modules()) == []


# --- one mechanism per job ------------------------------------------------------------------------

def code_strings(path):
    """The string constants of a module's code (f-strings' literal parts too), not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docstrings]


def modules_where(found):
    """The package modules (paths from the package) for which found(path) is true."""
    return sorted(str(path.relative_to(PACKAGE)) for path in modules().values() if found(path))


BACKEND_CLASSES = ("PostgresqlDatabase", "SqliteDatabase")


def test_one_backend_check():
    """"Is it PostgreSQL or SQLite?" is asked of fields.backend_of() alone, never by isinstance."""
    def asks_itself(path):
        return any(isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"
                   and len(node.args) == 2
                   and any(getattr(n, "attr", getattr(n, "id", None)) in BACKEND_CLASSES
                           for n in ast.walk(node.args[1]))
                   for node in ast.walk(ast.parse(path.read_text())))
    assert modules_where(asks_itself) == ["fields.py"]


def test_one_missing_table_detection():
    """SQLite's "no such table", PostgreSQL's SQLSTATE: read by db.missing_table_error alone."""
    def reads(path):
        return any("no such table" in s or "42P01" in s or "does not exist" in s and "relation" in s
                   for s in code_strings(path))
    assert modules_where(reads) == ["db.py"]


def test_one_plural():
    def defines(path):
        return any(isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "plural"
                   for node in ast.walk(ast.parse(path.read_text())))
    assert modules_where(defines) == ["errors.py"]


def test_one_whole_number_check():
    """Every "must be a whole number" refusal is fields.whole_number's."""
    def words(path):
        return any("whole number" in s for s in code_strings(path))
    assert set(modules_where(words)) == {"fields.py"}

# --- ARCHITECTURE.md ------------------------------------------------------------------------------

ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
NAMED = set(re.findall(r"`((?:pipeline_models|tests|bench|examples)/[\w/.]*\.py)`", ARCHITECTURE))


def test_architecture_names_only_files_that_exist():
    assert NAMED, "ARCHITECTURE.md names no file"
    assert sorted(p for p in NAMED if not (ROOT / p).exists()) == []


def test_architecture_names_every_package_module():
    package_files = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                     if not re.match(r"\d{4}_", p.name)}  # the migrations are named as a folder
    assert sorted(package_files - NAMED) == []


# --- the public API of this release (0.2.0) -------------------------------------------------------

# 0.2.0 took the pipeline's own domain (issue 21): VideoStatus and the names deprecated in 0.1.x
# that belonged to the old domain are gone (tests/test_deprecations.py), the pipeline's vocabulary
# and helpers are new.
VERSION = "0.2.0"
PUBLIC_0_2_0 = {
    "pipeline_models": [
        "ALL_MODELS", "AlreadyAnswered", "AlreadyUploaded", "Analytics", "BaseModel",
        "BusySnapshot", "CannotOpenDatabase", "Clip", "ConfigOverride", "ContentIdRisk",
        "DatabaseFileChanged", "DatabaseNotBound", "DiscoveredVideo", "ErrorLog", "ExtraMissing",
        "ExtractionMethod", "InvalidTransition", "LeaseLost", "MIGRATIONS_DIR",
        "PipelineModelsError", "PipelineRun", "Processed", "ReviewAction", "ReviewLog", "RunStatus",
        "SQLITE_FILE_PRAGMAS", "SchemaMismatch", "Script", "Short", "ShortStatus", "TTSAudio",
        "TablesMissing", "UploadCapReached", "UploadInDoubt", "db", "get_pending_videos", "init_db",
        "log_error", "mark_video_processed", "migrate", "utcnow", "write_lock", "__version__"],
    "pipeline_models.db": ["POSTGRES_DRIVER_MISSING", "SQLITE_FILE_PRAGMAS", "db", "init_db",
                           "migrate", "redact", "write_lock", "MIGRATIONS_DIR"],
    "pipeline_models.enums": ["ContentIdRisk", "ExtractionMethod", "Processed", "ReviewAction",
                              "RunStatus", "ShortStatus", "StrEnum"],
    "pipeline_models.errors": [
        "AlreadyAnswered", "AlreadyUploaded", "BusySnapshot", "CannotOpenDatabase",
        "DatabaseFileChanged", "DatabaseNotBound", "ExtraMissing", "InvalidTransition", "LeaseLost",
        "PipelineModelsError", "SchemaMismatch", "TablesMissing", "UploadCapReached",
        "UploadInDoubt"],
    "pipeline_models.fields": [
        "CheckedBigIntegerField", "CheckedBooleanField", "CheckedCharField", "CheckedEnumField",
        "CheckedFloatField", "CheckedForeignKeyField", "CheckedIntEnumField", "CheckedIntegerField",
        "CheckedJSONField", "CheckedTextField", "JSONTextField", "JSON_MAX_DEPTH", "UTC",
        "UTCDateTimeField", "escape_unstorable", "utcnow",
        # deprecated in 0.1.x, still importable (with a DeprecationWarning) until the next release:
        "BigIntegerField", "BooleanField", "CharField", "EnumField", "FloatField",
        "ForeignKeyField", "IntegerField", "JSONField", "TextField"],
    "pipeline_models.models": [
        "ALL_MODELS", "Analytics", "BaseModel", "Clip", "ConfigOverride", "DiscoveredVideo",
        "ErrorLog", "PipelineRun", "ReviewLog", "Script", "Short", "TTSAudio", "get_pending_videos",
        "log_error", "mark_video_processed"],
    "pipeline_models.cli": [
        "DB_HELP", "DEBUG_HELP", "DEFAULT_DB", "DEMO_DB", "DEMO_HELP", "EPILOG", "EXIT_BROKEN_PIPE",
        "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "MAX_DEMO_VIDEOS",
        "MAX_NUMBER", "NotFound", "PROG", "UTC", "UsageError", "as_json", "cmd_analytics",
        "cmd_compact", "cmd_config", "cmd_demo", "cmd_errors", "cmd_init", "cmd_report",
        "cmd_resolve", "cmd_retry", "cmd_review", "cmd_reviews", "cmd_run", "cmd_runs",
        "cmd_shorts", "cmd_status", "cmd_videos", "main", "parse", "parser", "plural", "table"],
    "pipeline_models.report": [
        "FUNNEL_STEPS", "LEASE_EXPIRED", "MAX_ERROR_TYPES", "NOT_LOGGED", "NO_STAGE", "OTHER",
        "OUTCOMES", "ReportSummary", "UTC", "data", "percentile", "render", "require_extra",
        "write"],
    "pipeline_models.demo": ["ALL_MODELS", "MARKER", "RenderCrashed", "SOURCES", "WORKERS",
                             "run_demo"],
    "pipeline_models.bot": ["KINDS", "NO_NICHE", "PREVIEW_CHARS", "Since", "digest", "errors",
                            "parse_since", "queue", "review_summary", "stats", "status"],
    "pipeline_models.pytest_plugin": ["ALL_MODELS", "Chain", "PipelineFactory", "pipeline_db",
                                      "pipeline_factory", "pytest_addoption",
                                      "pytest_report_header"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_0_2_0))
def test_every_public_name_of_this_release_imports(module):
    loaded = importlib.import_module(module)
    with warnings.catch_warnings():
        # renamed ones warn: tests/test_deprecations.py
        warnings.simplefilter("ignore", DeprecationWarning)
        missing = [name for name in PUBLIC_0_2_0[module] if not hasattr(loaded, name)]
    assert missing == []


def test_the_package_is_this_release():
    assert pipeline_models.__version__ == VERSION


def test_the_package_lists_each_public_name_once_and_no_other():
    assert len(pipeline_models.__all__) == len(set(pipeline_models.__all__))
    assert sorted(pipeline_models.__all__) == sorted(
        set(PUBLIC_0_2_0["pipeline_models"]) - {"__version__"})
    # Each submodule's list is its part of the package's (an old name listed again there would be an
    # alias).
    for module in ("pipeline_models.db", "pipeline_models.enums", "pipeline_models.errors",
                   "pipeline_models.models"):
        listed = importlib.import_module(module).__all__
        assert set(listed) <= set(PUBLIC_0_2_0[module]) & set(pipeline_models.__all__), module
