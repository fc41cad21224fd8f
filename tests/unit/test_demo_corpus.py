"""The demo corpus in the repository is exactly what ``data/corpus/generate.py`` writes from ``tables.json``.

The generator runs on a copy (its script and tables only) in a temporary folder, so the committed documents are
compared with a fresh run byte for byte: an edit to the tables or the generator that was not followed by a
re-generation, or a generated file edited by hand, fails here.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys

from tests.conftest import REPO

CORPUS = REPO / "data" / "corpus"


def test_the_committed_corpus_is_what_the_generator_writes(tmp_path):
    for name in ("generate.py", "tables.json"):
        shutil.copy(CORPUS / name, tmp_path / name)
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, capture_output=True, timeout=300)
    assert (tmp_path / "facts.json").read_bytes() == (CORPUS / "facts.json").read_bytes()

    def differences(cmp: filecmp.dircmp, prefix: str = "") -> list[str]:
        found = [f"{prefix}{n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files]
        for name, sub in cmp.subdirs.items():
            found += differences(sub, f"{prefix}{name}/")
        return found

    generated = tmp_path / "docs"
    assert sum(1 for p in generated.rglob("*") if p.is_file()) > 200
    cmp = filecmp.dircmp(generated, CORPUS / "docs")
    assert differences(cmp) == []
    for path in generated.rglob("*"):  # dircmp compares by stat signature first; compare the bytes as well
        if path.is_file():
            assert path.read_bytes() == (CORPUS / "docs" / path.relative_to(generated)).read_bytes(), path
