"""Every command's help against the command line's rules, walked from the parser cli builds.

A new command is covered as soon as parser() has it: its usage is argparse's own and names it in
full, each subcommand is listed once, each option's metavar is the documented one (cli.METAVARS),
only the top level has the epilog, a command that prints data takes --json (and prints JSON with
it), no help line is wider than 100 columns; a misspelt option or command names the closest one and
that command's help.
"""
import argparse
import json
import re

import pytest
from conftest import CYCLE_START

import pipeline_models as pm
from pipeline_models import cli

# The vocabulary of metavars: what the value is (N for a count).
ALLOWED = {"N", "DAYS", "NAME", "NICHE", "STATUS", "STATE", "MODULE", "SINCE", "TARGET", "TEXT",
           "FILE", "KEY", "VALUE", "RUN_ID", "ERROR_ID", "MESSAGE_ID|REVIEW_ID", "DETAIL"}
PRINTS = {"data", "message", "file"}  # what a command prints, as parser() says; "data" takes --json
COMMANDS = cli.commands(cli.parser())


def options(command):
    """{option string: its action} of `command`, the help's own -h/--help included."""
    return {option: action for action in command._actions for option in action.option_strings}


def subcommands(command):
    """The names of `command`'s subcommands (none for most)."""
    return [name for action in command._actions if action.nargs == argparse.PARSER
            for name in action.choices]


def path(name):
    """A command's full name as the words typed after pipeline-models: ["run", "show"]."""
    return name.split()[1:]


def test_the_walk_finds_every_command_and_its_subcommands():
    assert {"pipeline-models", "pipeline-models run show", "pipeline-models run summary",
            "pipeline-models errors show", "pipeline-models review answer",
            "pipeline-models config get", "pipeline-models demo"} <= set(COMMANDS)
    for name, command in COMMANDS.items():
        for sub in subcommands(command):
            assert f"{name} {sub}" in COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_usage_is_argparses_own_and_names_the_command_in_full(name):
    command = COMMANDS[name]
    assert command.usage is None  # not written by hand
    assert command.format_usage().startswith(f"usage: {name} [-h]")
    assert command.prog == name


@pytest.mark.parametrize("name", [n for n in COMMANDS if subcommands(COMMANDS[n])])
def test_each_subcommand_is_listed_once(name):
    text = COMMANDS[name].format_help()
    section = text.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0]
    listed = [m.group(1) for m in re.finditer(r"^ {2,4}(\S+)", section, re.M)]
    for sub in subcommands(COMMANDS[name]):
        assert listed.count(sub) == 1, (sub, section)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_value_has_the_documented_metavar(name):
    for action in COMMANDS[name]._actions:
        if action.option_strings and action.nargs != 0:  # an option that takes a value
            longest = max(action.option_strings, key=len)
            assert longest in cli.METAVARS, f"{name} {longest}: document it in cli.METAVARS"
            assert action.metavar == cli.METAVARS[longest], (name, longest)
        elif not action.option_strings and action.nargs != argparse.PARSER and not action.choices:
            assert action.metavar in ALLOWED, (name, action.dest)  # a positional: what it is
    assert set(cli.METAVARS.values()) <= ALLOWED


@pytest.mark.parametrize("name", COMMANDS)
def test_only_the_top_level_has_the_epilog(name):
    command = COMMANDS[name]
    if name == cli.PROG:
        assert command.epilog == cli.EPILOG and "exit status: 0 done" in command.format_help()
    else:
        assert command.epilog is None and "exit status" not in command.format_help()


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_that_prints_data_takes_json(name):
    command = COMMANDS[name]
    prints = command.get_default("prints")
    if command.get_default("func") is None:  # the top level, run, review, config: a group
        assert prints is None and subcommands(command)
        return
    assert prints in PRINTS, f"{name}: say what it prints (prints=...)"
    assert ("--json" in options(command)) == (prints == "data"), name


@pytest.mark.parametrize("columns", [None, "300", "60"])
def test_no_help_line_is_wider_than_100_columns(monkeypatch, columns):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    for name, text in cli.help_texts().items():
        wide = [line for line in text.splitlines() if len(line) > 100]
        assert wide == [], name


def test_every_commands_help_is_what_it_prints(capsys):
    """Each command's --help as printed (shown with -s): the parser's text, exit status 0."""
    texts = cli.help_texts()
    for name, text in texts.items():
        assert cli.main([*path(name), "--help"]) == 0
        out = capsys.readouterr().out
        assert out == text and out.startswith(f"usage: {name} ")
    with capsys.disabled():
        print("\n" + "\n".join(f"$ {name} --help\n{text}" for name, text in texts.items()))


@pytest.fixture
def dbfile(tmp_path):
    """A database with one run, one error and one config override, unbound."""
    target = str(tmp_path / "p.db")
    pm.init_db(target)
    run = pm.PipelineRun.schedule("gaming", CYCLE_START)
    pm.ErrorLog.record(RuntimeError("boom"), "render", pipeline_run=run)
    pm.ConfigOverride.set("scheduler.max_concurrent_pipelines", 3)
    pm.Analytics.record("yt1", view_count=100)
    pm.db.obj.close()
    pm.db.initialize(None)
    return target


def test_every_data_command_prints_json(dbfile, capsys):
    values = {"RUN_ID": "1", "ERROR_ID": "1", "KEY": "scheduler.max_concurrent_pipelines"}
    data = [name for name, command in COMMANDS.items() if command.get_default("prints") == "data"]
    assert {"config get", "errors show", "run show"} <= {" ".join(path(name)) for name in data}
    for name in data:
        positionals = [a.metavar for a in COMMANDS[name]._actions
                       if not a.option_strings and a.nargs != argparse.PARSER]
        argv = [*path(name), *(values[p] for p in positionals), "--json", "--db", dbfile]
        assert cli.main(argv) == 0, argv
        json.loads(capsys.readouterr().out)  # one JSON document
    assert cli.main(["config", "get", values["KEY"], "--json", "--db", dbfile]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["key"], document["value"]) == (values["KEY"], 3) and "updated_at" in document
    # either place
    for argv in (["errors", "--json", "show", "1"], ["errors", "show", "1", "--json"]):
        assert cli.main([*argv, "--db", dbfile]) == 0
        assert json.loads(capsys.readouterr().out)["error_message"] == "boom"


@pytest.mark.parametrize("argv, said", [
    (["errors", "--jsn"],
     "unrecognized arguments: --jsn; did you mean --json? (see pipeline-models errors --help)"),
    (["--db", "x.db", "runs", "--limt", "3"],
     "unrecognized arguments: --limt 3; did you mean --limit? (see pipeline-models runs --help)"),
    (["errors", "show", "1", "--jsno"],
     "unrecognized arguments: --jsno; did you mean --json? "
     "(see pipeline-models errors show --help)"),
    (["stauts"], "invalid choice: 'stauts' (choose from "),
    (["config", "lst"], "did you mean list? (see pipeline-models config --help)"),
    (["run", "shwo", "1"], "did you mean show? (see pipeline-models run --help)"),
    (["runs", "--zzz"], "unrecognized arguments: --zzz (see pipeline-models runs --help)"),
    (["--json", "status"], "unrecognized arguments: --json; give --json after "
                           "pipeline-models status (see pipeline-models status --help)"),
    (["run", "--json", "show", "1"], "give --json after pipeline-models run show (see "),
])
def test_a_misspelt_option_or_command_names_the_closest_and_its_help(tmp_path, monkeypatch, capsys,
                                                                     argv, said):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("pipeline-models: error: ") and said in captured.err
    if argv == ["stauts"]:
        assert captured.err.rstrip().endswith("; did you mean status? (see pipeline-models --help)")
    assert not (tmp_path / "x.db").exists()
