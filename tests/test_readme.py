"""The README's quickstart and the example script run as written."""
import os
import re
import subprocess
import sys

import pipeline_models as pm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys):
    with open(os.path.join(ROOT, "README.md")) as fh:
        readme = fh.read()
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[1] 1 UTC"
    assert (tmp_path / "pipeline.db").is_file()


def test_example_quickstart_script(tmp_path):
    path = tmp_path / "q.db"
    for _ in range(2):  # a second start reuses the video and migrates nothing
        out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "quickstart.py"), str(path)],
                             check=True, capture_output=True, text=True).stdout
    assert "run 2: running at stage clip" in out and "latest analytics: 1200 views" in out
    database = pm.init_db(path)
    assert pm.DiscoveredVideo.select().count() == 1 and pm.PipelineRun.select().count() == 2
    database.close()
