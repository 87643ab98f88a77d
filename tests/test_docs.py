"""The Sphinx documentation builds without a warning (needs the docs extra)."""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
         "-D", "autosummary_generate=1", str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "html" / "index.html").is_file()
