"""Another revision of stream_al beside this tree, for a benchmark's side-by-side runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: This tree: the folder that holds ``stream_al`` and ``bench``.
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """``ref`` checked out in a temporary git worktree, removed on every exit path."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "against"
        git = ["git", "-C", str(ROOT)]
        added = subprocess.run(
            [*git, "worktree", "add", "--quiet", "--detach", str(tree), ref],
            capture_output=True,
            text=True,
        )
        if added.returncode:
            raise SystemExit(f"cannot check out {ref!r}: {added.stderr.strip()}")
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


def importing(source: Path) -> dict[str, str]:
    """The environment of a child process that imports ``stream_al`` from ``source``.

    ``PYTHONPATH`` comes before the editable install of this tree, as long as the child is
    started as a script (``python path/to/script.py``): ``python -c`` or ``-m`` would put
    the current folder first, and from this tree's root that is this tree's ``stream_al``.
    """
    return os.environ | {"PYTHONPATH": str(source)}
