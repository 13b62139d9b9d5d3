"""The docs run as written: every ```python block of the README and of each page in docs/, in page
order, on a fresh database (SQLite and PostgreSQL), with no name undefined; each test file they show
passes under pytest; the site builds with warnings as errors; the column reference and the state
diagram are generated from the models.

A ```python block runs unless the line before it says otherwise:
- `<!-- docs-python: pytest -->`: the block is a whole test file, run by pytest with the plugin;
- `<!-- docs-python: skip (reason) -->`: not run (e.g. it names a server that is not there).
A page's other blocks run one after the other in one namespace, as a reader pasting them into one
session would, in a new working directory; its first block binds the database (on the PostgreSQL
leg, its init_db("pipeline.db") or init_db(":memory:") binds a new database on the test server).
"""
import code
import json
import os
import re
import subprocess
import sys
import textwrap

import peewee
import pyflakes.api
import pyflakes.messages
import pyflakes.reporter
import pytest

import pipeline_models as pm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
README_LINES = 150  # one screen: the rest is in docs/
_MARK = re.compile(r"^<!--\s*docs-python:\s*(pytest|skip\s*\((.+)\))\s*-->$")


def pages():
    """README.md, then docs/index.md and every page its toctrees list, in their order."""
    index = _read("docs/index.md")
    listed = re.findall(r"^(\w+)$", "\n".join(re.findall(r"```\{toctree\}\n(.*?)```", index, re.S)),
                        re.M)
    return ["README.md", "docs/index.md", *(f"docs/{name}.md" for name in listed)]


def _read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
        return fh.read()


def python_blocks(text):
    """The page's ```python blocks in order, as dicts (line, body, kind: run, pytest or skip)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            mark = _MARK.match(before)
            kind = "run" if mark is None else "pytest" if mark.group(1) == "pytest" else "skip"
            blocks.append(dict(line=i + 1, body="\n".join(lines[i + 1:end]) + "\n", kind=kind))
            i = end
        i += 1
    return blocks


PAGES = pages()
RUN_PAGES = [page for page in PAGES if any(b["kind"] == "run" for b in python_blocks(_read(page)))]
TEST_FILES = [(page, block) for page in PAGES for block in python_blocks(_read(page))
              if block["kind"] == "pytest"]


def test_the_readme_is_one_screen_and_the_package_description():
    readme = _read("README.md")
    assert len(readme.splitlines()) <= README_LINES
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as fh:
        assert 'readme = "README.md"' in fh.read()
    for link in re.findall(r"\]\((docs/[\w/]+\.md)", readme):  # every page it links to exists
        assert os.path.exists(os.path.join(ROOT, link)), link


def test_every_page_is_in_the_site():
    on_disk = {f"docs/{name}" for name in os.listdir(DOCS) if name.endswith(".md")}
    assert on_disk == set(PAGES) - {"README.md"}


@pytest.fixture(params=["sqlite", "postgres"])
def docs_target(request, monkeypatch):
    """Where a page's init_db("pipeline.db") or init_db(":memory:") binds: there, or a new
    PostgreSQL database."""
    if request.param == "sqlite":
        return "pipeline.db"
    url = request.getfixturevalue("pg_server").new_database()
    init_db = pm.init_db
    monkeypatch.setattr(pm, "init_db", lambda target="pipeline.db", **kw: init_db(
        url if target in ("pipeline.db", ":memory:") else target, **kw))
    return url


def run_page(page):
    """Run the page's blocks in order in one namespace; the namespace."""
    namespace = {"__name__": "__docs__"}
    for block in python_blocks(_read(page)):
        if block["kind"] != "run":
            continue
        try:
            exec(compile(block["body"], f"{page}, the block at line {block['line']}", "exec"),
                 namespace)
        except Exception as exc:
            raise AssertionError(f"{page} line {block['line']}: the block fails: {exc!r}") from exc
    return namespace


# What some pages print, in full: the story they tell ends where they say it does.
PRINTS = {
    "README.md": "[(1, 'gamevid0002'), (2, 'gamevid0003'), (3, 'gamevid0001')] 0 "
                 "2026-06-01 06:30:00+00:00\n",
    "docs/cycle.md": "[(1, 'gamevid0002'), (2, 'gamevid0003'), (3, 'gamevid0001')]\nNone\n"
                     "failed RuntimeError: the source channel is gone\nreview 10\n",
    "docs/reviews.md": "uploaded None\n",
}


@pytest.mark.parametrize("page", RUN_PAGES)
def test_the_python_blocks_of_each_page_run_in_order_on_a_fresh_database(
        page, tmp_path, monkeypatch, capsys, docs_target):
    monkeypatch.chdir(tmp_path)
    first = next(b for b in python_blocks(_read(page)) if b["kind"] == "run")
    assert "init_db(" in first["body"], f"{page}: its first block binds the database"
    run_page(page)
    out = capsys.readouterr().out
    if page in PRINTS:
        assert out == PRINTS[page]
    if page == "docs/reviews.md":  # after a hold, a skip and an approval, uploaded
        run = pm.PipelineRun.get(pm.PipelineRun.niche == "gaming")
        kept = run.clips.where(pm.Clip.dropped_at.is_null()).order_by(pm.Clip.rank_position)
        assert [clip.rank_position for clip in kept] == [1, 2]
        assert [r.action for r in run.reviews.order_by(pm.ReviewLog.id)] == [
            pm.ReviewAction.skip, pm.ReviewAction.approve]
        assert {s.status for s in run.shorts} == {pm.ShortStatus.rejected, pm.ShortStatus.uploaded}


def _undefined(source, filename):
    """pyflakes' messages about names used but never defined (or defined after use)."""
    class Collect(pyflakes.reporter.Reporter):
        def __init__(self):
            super().__init__(sys.stdout, sys.stderr)
            self.found = []

        def flake(self, message):
            if isinstance(message, (pyflakes.messages.UndefinedName,
                                    pyflakes.messages.UndefinedLocal)):
                self.found.append(str(message))

        def syntaxError(self, filename, msg, lineno, offset, text):  # noqa: N802 (pyflakes' name)
            self.found.append(f"{filename}:{lineno}: {msg}")

    reporter = Collect()
    pyflakes.api.check(source, filename, reporter)
    return reporter.found


@pytest.mark.parametrize("page", PAGES)
def test_no_page_uses_a_name_it_does_not_define(page):
    blocks = [b for b in python_blocks(_read(page)) if b["kind"] == "run"]
    assert not _undefined("".join(b["body"] for b in blocks), page)
    for block in (b for b in python_blocks(_read(page)) if b["kind"] != "run"):
        assert not _undefined(block["body"], f"{page} line {block['line']}")


def repl_errors(source):
    """What Python's interactive prompt makes of `source` pasted line by line: its syntax errors.

    The prompt ends a compound statement (for, with, def) only at a blank line, so a statement
    right after one, unindented, is an error there although it runs as a file."""
    class Prompt(code.InteractiveConsole):
        found = []

        def runcode(self, compiled):  # compiled, never run: only whether it parses is asked
            pass

        def showsyntaxerror(self, filename=None, **kwargs):
            self.found.append(str(sys.exc_info()[1]))

    prompt = Prompt()
    prompt.found = []
    for line in source.splitlines():
        prompt.push(line)
    prompt.push("")
    return prompt.found


@pytest.mark.parametrize("page", PAGES)
def test_each_block_pastes_into_the_interactive_prompt(page):
    for block in python_blocks(_read(page)):
        if block["kind"] != "pytest":
            assert not repl_errors(block["body"]), f"{page} line {block['line']}: add a blank line"


def test_the_prompt_check_finds_a_statement_glued_to_a_block():
    assert repl_errors("for n in range(2):\n    print(n)\nprint('done')\n")
    assert not repl_errors("for n in range(2):\n    print(n)\n\nprint('done')\n")


def test_the_undefined_name_check_finds_one():
    assert _undefined("print(short)\n", "x.md") == ["x.md:1:7: undefined name 'short'"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("page, block", TEST_FILES, ids=[f"{p}:{b['line']}" for p, b in TEST_FILES])
def test_each_test_file_shown_passes_under_pytest(tmp_path, backend, request, page, block):
    (tmp_path / "test_docs_example.py").write_text(block["body"])
    args = []
    if backend == "postgres":
        args = ["--pipeline-db-url", request.getfixturevalue("pg_server").url]
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTEST_ADDOPTS="")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p",
                           "pipeline_models.pytest_plugin", "-p", "no:cacheprovider", *args,
                           "test_docs_example.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    tests = len(re.findall(r"^def test_", block["body"], re.M))
    assert proc.returncode == 0 and f"{tests} passed" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-3000:])


def test_every_python_block_is_run_or_says_why_not():
    kinds = [block["kind"] for page in PAGES for block in python_blocks(_read(page))]
    assert kinds.count("pytest") == 2 and kinds.count("run") >= 15
    marks = sum(len(re.findall(r"docs-python:", _read(page))) for page in PAGES)
    assert marks == kinds.count("pytest") + kinds.count("skip"), (
        "a docs-python marker must come right before a ```python block")


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path):
    if not _have("sphinx", "myst_parser", "furo", "sphinxcontrib.mermaid"):
        if os.environ.get("PIPELINE_MODELS_REQUIRE_DOCS") == "1":
            pytest.fail("PIPELINE_MODELS_REQUIRE_DOCS=1 but the docs extra is not installed")
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           DOCS, str(tmp_path / "html")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for page in PAGES[1:]:
        assert (tmp_path / "html" / os.path.basename(page).replace(".md", ".html")).is_file()


def _have(*modules):
    import importlib.util
    return all(importlib.util.find_spec(name) for name in modules)


@pytest.mark.slow
def test_example_quickstart_script(tmp_path):
    path = tmp_path / "q.db"
    counts = []
    for _ in range(2):  # a second run on the same file finds the same video and migrates nothing
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "quickstart.py"), str(path)],
                       check=True, capture_output=True, text=True, timeout=120)
        database = pm.init_db(path)
        counts.append((pm.DiscoveredVideo.select().count(), pm.PipelineRun.select().count() > 0))
        database.close()
        pm.db.initialize(None)
    assert counts[0] == counts[1] and counts[0][0] >= 1 and counts[0][1]


# --- the column reference is generated from the models -------------------------------

BEGIN = "<!-- reference: generated by `python tests/test_docs.py` from the models -->"
END = "<!-- /reference -->"


def _type(field):
    """The column's SQL type as a reader wants it: PostgreSQL's name, with what SQLite makes of it
    when different."""
    kind = _kind(field)
    return kind + ", unique" if field.unique else kind


def _kind(field):
    if isinstance(field, peewee.ForeignKeyField):
        return f"INTEGER → `{field.rel_model._meta.table_name}.id`" + (
            f" ON DELETE {field.on_delete}" if field.on_delete else "")
    if isinstance(field, peewee.AutoField):
        return "INTEGER, primary key"
    if isinstance(field, pm.fields.JSONTextField):
        return f"VARCHAR({field.max_length}), JSON text"
    if isinstance(field, peewee.CharField):
        return f"VARCHAR({field.max_length})" + (", primary key" if field.primary_key else "")
    for kind, name in ((peewee.JSONField, "JSONB (JSON text on SQLite)"),
                       (peewee.TextField, "TEXT"), (peewee.BigIntegerField, "BIGINT"),
                       (peewee.IntegerField, "INTEGER"), (peewee.DoubleField, "DOUBLE PRECISION"),
                       (peewee.BooleanField, "BOOLEAN"), (pm.fields.UTCDateTimeField,
                                                          "TIMESTAMPTZ (UTC text on SQLite)")):
        if isinstance(field, kind):
            return name
    raise AssertionError(f"no reference type for {field!r}")


def _default(field):
    if field.default is None:
        return ""
    if field.default is pm.utcnow:
        return "now (UTC)"
    return f"`{json.dumps(getattr(field.default, 'value', field.default))}`"


def _meaning(field):
    meaning = field.help_text or ("the row's id" if isinstance(field, peewee.AutoField) else "")
    assert meaning, f"{field.model.__name__}.{field.name} has no help_text"
    # said in the meaning
    enum = isinstance(field, (pm.fields.CheckedEnumField, pm.fields.CheckedIntEnumField))
    checks = [c.sql for c in field.constraints or () if not enum]
    return meaning + "".join(f"; `{check}`" for check in checks)


def _named(index, model):
    """An index added by name (the pipeline's, the seed's, the package's composite and partial
    ones), not the one peewee makes by itself for a unique field or a foreign key."""
    columns = [_column(e) for e in index._expressions]
    default_name = f"{model._meta.table_name}_{columns[0]}"
    return len(columns) > 1 or index._where is not None or index._name != default_name


def reference():
    """The column reference: each model's columns with type, NULL-ness, default and meaning."""
    lines = [BEGIN]
    for model in pm.ALL_MODELS:
        title = f"**`{model.__name__}`** (table `{model._meta.table_name}`): {model.__doc__}"
        lines += ["", *_wrap(title), "",
                  "| column | type | NULL | default | meaning |", "|---|---|---|---|---|"]
        lines += [f"| `{f.column_name}` | {_type(f)} | {'yes' if f.null else 'no'} | {_default(f)} "
                  f"| {_meaning(f)} |"
                  for f in model._meta.sorted_fields]
        sql = peewee.SqliteDatabase(None).get_sql_context()
        checks = [sql.sql(check).query()[0] for check in model._meta.constraints or ()]
        indexes = [i for i in model._meta.fields_to_index() if _named(i, model)]
        notes = []
        if checks:
            notes.append("Checks: " + ", ".join(f"`{check}`" for check in checks) + ".")
        if indexes:
            notes.append("Indexes: " + ", ".join(_index(i) for i in indexes) + ".")
        if notes:
            lines += ["", *_wrap(" ".join(notes))]
    return "\n".join(lines + ["", END])


def _wrap(text):
    """Prose lines of at most 100 characters, as the pages' own (a code span is never split)."""
    return textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False)


def _column(expression):
    """An index's column by name, or an ordered one as SQLite writes it (viral_score DESC)."""
    if hasattr(expression, "column_name"):
        return expression.column_name
    return peewee.SqliteDatabase(None).get_sql_context().sql(expression).query()[0].replace('"', "")


def _index(index):
    where = f" where `{index._where.sql}`" if index._where is not None else ""
    unique = "unique " if index._unique else ""
    return f"`{index._name}` ({unique}{', '.join(_column(e) for e in index._expressions)}{where})"


def test_the_reference_names_the_seven_indexes_of_the_pipeline_and_the_seed():
    seven = {"idx_discovered_videos_niche", "idx_discovered_videos_processed",
             "idx_pipeline_runs_status", "idx_pipeline_runs_niche", "idx_clips_pipeline",
             "idx_analytics_video", "idx_error_log_module"}
    assert seven <= set(re.findall(r"`(idx_\w+)`\s\(", reference()))


# --- the state diagram is drawn from the transition tables ----------------------------

STATES_BEGIN = ("<!-- states: generated by `python tests/test_docs.py` from the transition "
                "tables -->")
STATES_END = "<!-- /states -->"

# How each machine is entered (the tables say only where each status may go from there).
MACHINES = [
    ("PipelineRun.status", "run", pm.PipelineRun.TRANSITIONS, "pending", "PipelineRun.schedule()"),
    ("Short.status", "short", pm.Short.TRANSITIONS, "pending", "Short.create()"),
    ("ReviewLog", "review", pm.ReviewLog.TRANSITIONS, "open", "ReviewLog.request()"),
    ("DiscoveredVideo (processed, taken_by_run)", "video", pm.DiscoveredVideo.TRANSITIONS,
     "pending", "DiscoveredVideo.discover()"),
    ("Clip", "clip", pm.Clip.TRANSITIONS, "kept", "PipelineRun.keep_clips()"),
]


def states():
    """The state diagram (mermaid): every machine's statuses and moves, with the operation that
    makes each; and what sets a video's `processed`, which is no state machine."""
    lines = [STATES_BEGIN, "", "```mermaid", "stateDiagram-v2"]
    for title, prefix, table, first, entry in MACHINES:
        lines.append(f'    state "{title}" as {prefix} {{')
        lines += [f'        state "{status}" as {prefix}_{status}' for status in table]
        lines.append(f"        [*] --> {prefix}_{first}: {entry}")
        for source, targets in table.items():
            lines += [f"        {prefix}_{source} --> {prefix}_{target}: {how}" for target,
                      how in targets.items()]
            if not targets:
                lines.append(f"        {prefix}_{source} --> [*]")
        lines.append("    }")
    values = ", ".join(f"{int(member)} {member.name}" for member in pm.Processed)
    processed = (f"A video's `processed` is the pipeline's integer: {values} (`Processed`); "
                 "\"taken\" is a "
                 "pending video a run holds (`taken_by_run`), listed by no `get_pending_videos()`. "
                 "The "
                 "pipeline's own `mark_video_processed(video_id, status)` may set any of the four.")
    lines += ["```", "", *_wrap(processed), "", STATES_END]
    return "\n".join(str(line) for line in lines)


# --- every command's help, from the parser --------------------------------------------------------

HELP_BEGIN = "<!-- cli-help: generated by `python tests/test_docs.py` from the parser -->"
HELP_END = "<!-- /cli-help -->"


def cli_help():
    """docs/cli.md's last section: each command's --help, as a reader's terminal shows it."""
    from pipeline_models import cli
    saved = {name: os.environ.pop(name, None) for name in ("PIPELINE_DB", "COLUMNS")}
    os.environ["COLUMNS"] = "100"  # the help wraps at the terminal's width: this one's is 100
    try:  # and it names $PIPELINE_DB's value, which is not the reader's
        texts = cli.help_texts()
    finally:
        del os.environ["COLUMNS"]
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    lines = [HELP_BEGIN]
    for command, text in texts.items():
        lines += ["", f"### `{command}`", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines + ["", HELP_END])


REFERENCE, CLI = "docs/reference.md", "docs/cli.md"
SECTIONS = [(REFERENCE, BEGIN, END, reference), (REFERENCE, STATES_BEGIN, STATES_END, states),
            (CLI, HELP_BEGIN, HELP_END, cli_help)]


@pytest.mark.parametrize("page, begin, end, make", SECTIONS,
                         ids=["column reference", "state diagram", "command help"])
def test_the_sections_generated_from_the_code_are_up_to_date(page, begin, end, make):
    text = _read(page)
    assert text.count(begin) == 1 and text.count(end) == 1
    current = text[text.index(begin): text.index(end) + len(end)]
    assert current == make(), f"{page} is out of date: run python tests/test_docs.py"


def test_the_command_help_section_has_every_command():
    from pipeline_models import cli
    section = cli_help()
    assert all(f"### `{command}`" in section for command in cli.help_texts())
    assert "### `pipeline-models run show`" in section and "usage: pipeline-models demo" in section


def test_the_state_diagram_covers_every_status_and_move():
    diagram = states()
    for title, prefix, table, _, _ in MACHINES:
        for source, targets in table.items():
            assert f'state "{source}" as {prefix}_{source}' in diagram
            for target, how in targets.items():
                assert f"{prefix}_{source} --> {prefix}_{target}: {how}" in diagram
    moves = sum(len(t) or 1 for _, _, table, _, _ in MACHINES for t in table.values())
    assert diagram.count(" --> ") == moves + len(MACHINES)  # and one entry per machine
    assert set(pm.DiscoveredVideo.TRANSITIONS) == {m.name for m in pm.Processed} | {"taken"}
    assert all(f"{int(member)} {member.name}" in diagram for member in pm.Processed)


if __name__ == "__main__":  # rewrite the pages' generated sections from the code
    for page in sorted({page for page, *_ in SECTIONS}):
        text = _read(page)
        for where, begin, end, make in SECTIONS:
            if where == page:
                start, stop = text.index(begin), text.index(end) + len(end)
                text = text[:start] + make() + text[stop:]
        with open(os.path.join(ROOT, page), "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"{page}: generated sections rewritten")
