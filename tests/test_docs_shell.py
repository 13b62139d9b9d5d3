"""The shell blocks of the README and the docs run as written, in page order (README.md, then the
pages docs/index.md lists), in a fresh shell at the root of a fresh copy.

Every fenced block tagged ```sh, ```bash or ```shell is one test (```console and plain ``` blocks
show output and are not run). Each runs as

    env -i HOME=<new dir> PATH=<a login shell's PATH> LANG=C.UTF-8 <the variables below> \
        bash -euo pipefail -c BLOCK

in one copy of the repository made for this module: its files as a clone would have them (without
.git and whatever .gitignore ignores, so no .venv), so `python3 -m venv .venv && .venv/bin/pip
install ...` really makes a virtual environment and installs from the package index. The blocks
share the copy, as a reader's terminal would: a later block uses the .venv an earlier one made (a
block selected alone with -k first runs the blocks before it). PATH is what Debian's /etc/profile
gives a login shell: with the sbin directories for root, since `.ci/postgres` runs the server
through runuser. Nothing else is passed through, except these, set here:

- PYTEST_ADDOPTS="--collect-only -q": a block's `.venv/bin/python -m pytest` runs for real (pytest
  starts in the new environment and imports and collects every test, failing on any import or
  collection error) but does not run again the suite that the run running this test is running.
- PIPELINE_MODELS_BENCH_QUICK=1: `bench/run.py` takes small defaults (2,000 rows, one repeat:
  seconds, not the 15 minutes of the published run), so the benchmark block shows that its command
  works.
- PIPELINE_MODELS_IN_DOCS_TEST=1: this module skips itself in such a nested run.
- TMPDIR: a directory of this test's (world-writable, as /tmp is), so that whatever a block leaves
  there (e.g. a PostgreSQL server a failed block did not stop) is stopped and removed at the end.

A block right after `<!-- docs-shell: skip (reason) -->` is reported as skipped, with that reason.
PIPELINE_MODELS_SKIP_DOCS_SHELL=1 skips the whole module (it downloads packages and takes minutes).
"""
import fnmatch
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from test_docs import pages  # README.md, then the pages docs/index.md lists, in order

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELLS = {"sh", "bash", "shell"}
TIMEOUT = 900  # seconds for one block: an install from the index on a slow network

pytestmark = [
    pytest.mark.skipif(os.environ.get("PIPELINE_MODELS_SKIP_DOCS_SHELL") == "1",
                       reason="PIPELINE_MODELS_SKIP_DOCS_SHELL=1"),
    pytest.mark.skipif(os.environ.get("PIPELINE_MODELS_IN_DOCS_TEST") == "1",
                       reason="inside a docs block's own pytest run"),
]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_SKIP = re.compile(r"^<!--\s*docs-shell:\s*skip\s*\((.+)\)\s*-->$")


def shell_blocks(text):
    """A page's shell blocks in order, as dicts (line, tag, body, skip reason), and misplaced skip
    markers."""
    blocks, misplaced = [], []
    lines = text.splitlines()
    skip, i = None, 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        marker = _SKIP.match(line.strip())
        if marker:
            if skip is not None:
                misplaced.append(skip[0])
            skip = (i + 1, marker.group(1).strip())
        elif fence:
            mark, tag = fence.group(1), fence.group(2).lower()
            close = re.compile(r"^ {0,3}" + re.escape(mark[0]) + "{" + str(len(mark)) + r",}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
            if tag in SHELLS:
                blocks.append(dict(line=i + 1, tag=tag, body="\n".join(lines[i + 1:end]) + "\n",
                                   skip=skip and skip[1]))
            elif skip is not None:
                misplaced.append(skip[0])
            skip, i = None, end
        elif line.strip() and skip is not None:
            misplaced.append(skip[0])
            skip = None
        i += 1
    if skip is not None:
        misplaced.append(skip[0])
    return blocks, misplaced


def _title(block):
    """The block's first command, for the test id."""
    commands = [
        ln.strip() for ln in block["body"].splitlines()
        if ln.strip() and not ln.strip().startswith("#")]
    return (commands[0] if commands else "(empty)")[:70]


BLOCKS, MISPLACED = [], []
for _page in pages():
    with open(os.path.join(ROOT, _page), encoding="utf-8") as _fh:
        _blocks, _misplaced = shell_blocks(_fh.read())
    BLOCKS += [dict(block, page=_page) for block in _blocks]
    MISPLACED += [f"{_page}:{line}" for line in _misplaced]


def _ignore(patterns):
    """A copytree ignore function for .git and simple .gitignore patterns (no negation)."""
    def ignore(directory, names):
        rel_dir = os.path.relpath(directory, ROOT)
        ignored = set()
        for name in names:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            is_dir = os.path.isdir(os.path.join(directory, name))
            for pattern in patterns:
                dir_only, bare = pattern.endswith("/"), pattern.strip("/")
                if dir_only and not is_dir:
                    continue
                if fnmatch.fnmatch(rel if "/" in bare else name, bare):
                    ignored.add(name)
        return ignored | ({".git"} & set(names))
    return ignore


def copy_repository(dest):
    """Copy the repository's files, as a clone has them, to `dest`."""
    patterns = []
    if os.path.exists(os.path.join(ROOT, ".gitignore")):
        with open(os.path.join(ROOT, ".gitignore"), encoding="utf-8") as fh:
            patterns = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], (
        ".gitignore negations are not supported here")
    shutil.copytree(ROOT, dest, symlinks=True, ignore=_ignore(patterns))


class Terminal:
    """The fresh copy, the fresh environment, and which blocks ran (and which failed) in it."""

    def __init__(self, base):
        self.repo, self.home, self.tmp = (os.path.join(base, name) for name in ("repo", "home",
                                                                                "tmp"))
        copy_repository(self.repo)
        os.mkdir(self.home)
        os.mkdir(self.tmp)
        # as /tmp: .ci/postgres hands a mktemp directory to the postgres user
        os.chmod(self.tmp, 0o1777)
        login_path = "/usr/local/bin:/usr/bin:/bin"
        if os.geteuid() == 0:
            login_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.env = dict(HOME=self.home, PATH=login_path, LANG="C.UTF-8", TMPDIR=self.tmp,
                        PYTEST_ADDOPTS="--collect-only -q", PIPELINE_MODELS_BENCH_QUICK="1",
                        PIPELINE_MODELS_IN_DOCS_TEST="1")
        self.ran, self.failed = set(), []

    def run(self, index):
        """Run block `index`, after any earlier block not yet run; (status, stdout, stderr,
        seconds)."""
        for earlier in range(index):
            if earlier not in self.ran and not BLOCKS[earlier]["skip"]:
                self.run(earlier)
        command = ["env", "-i", *(f"{k}={v}" for k, v in self.env.items()),
                   "bash", "-euo", "pipefail", "-c", BLOCKS[index]["body"]]
        began = time.monotonic()
        proc = subprocess.Popen(command, cwd=self.repo, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # the block's whole process group: pip, servers it started
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n(killed after {TIMEOUT} s)"
        self.ran.add(index)
        if proc.returncode != 0:
            self.failed.append(index)
        return proc.returncode, out, err, time.monotonic() - began

    def close(self):
        """Stop any PostgreSQL server a block left running under TMPDIR (a failed block does not
        reach its stop)."""
        for pid in glob.glob(os.path.join(self.tmp, "*", "data", "postmaster.pid")):
            subprocess.run(["bash", os.path.join(self.repo, ".ci", "postgres"), "stop",
                            os.path.dirname(os.path.dirname(pid))], capture_output=True,
                           timeout=120)


@pytest.fixture(scope="module")
def terminal():
    """One fresh copy and environment for all the blocks, removed at the end."""
    base = tempfile.mkdtemp(prefix="pm-docs-shell-")
    os.chmod(base, 0o755)  # the postgres user started by a block must reach TMPDIR inside it
    term = Terminal(base)
    try:
        yield term
    finally:
        term.close()
        shutil.rmtree(base, ignore_errors=True)


def _tail(text, lines=40):
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(nothing)"


@pytest.mark.slow
@pytest.mark.parametrize("index", [
    pytest.param(n, id=f"{n}-{_title(block)}",
                 marks=[pytest.mark.skip(reason=f"{block['page']} line {block['line']}: "
                                                f"{block['skip']}")]
                 if block["skip"] else [])
    for n, block in enumerate(BLOCKS)])
def test_each_shell_block_runs_in_a_fresh_shell(terminal, index):
    block = BLOCKS[index]
    earlier = [n for n in terminal.failed if n < index]
    status, out, err, seconds = terminal.run(index)
    assert status == 0, (
        f"{block['page']} line {block['line']}: the ```{block['tag']} block exited {status} after "
        f"{seconds:.0f} s"
        + (f" (block {', '.join(map(str, earlier))} before it failed too)" if earlier else "")
        + f"\n--- block\n{block['body']}--- stderr (tail)\n{_tail(err)}\n--- stdout "
          f"(tail)\n{_tail(out)}")


def test_the_pages_have_shell_blocks_and_no_stray_skip_markers():
    assert BLOCKS and "python3 -m venv .venv" in BLOCKS[0]["body"]
    assert not MISPLACED, (
        f"{MISPLACED}: a docs-shell skip marker must come right before a shell block")


def test_only_shell_blocks_are_picked_and_skip_markers_are_honoured():
    text = "\n".join([
        "```sh", "echo one", "```", "```console", "$ echo shown", "```", "```", "plain", "```",
        "<!-- docs-shell: skip (needs a GPU) -->", "", "```bash", "echo two", "````", "",
        "````shell", "echo three", "```", "still three", "````", "```python", "print(4)", "```",
        "<!-- docs-shell: skip (stray) -->", "text", "~~~sh", "echo five", "~~~",
    ])
    blocks, misplaced = shell_blocks(text)
    assert [(b["tag"], b["body"], b["skip"]) for b in blocks] == [
        ("sh", "echo one\n", None), ("bash", "echo two\n", "needs a GPU"),
        ("shell", "echo three\n```\nstill three\n", None), ("sh", "echo five\n", None)]
    assert [b["line"] for b in blocks] == [1, 12, 16, 26] and misplaced == [24]
