"""The ``shared`` folder CI lays out beside the checkout (specs, datasets).

A checkout at ``<dir>/<repo>`` finds it at ``<dir>/shared``. A git worktree
(``.git`` is then a file naming ``<main>/.git/worktrees/<name>``) may live
elsewhere, so the folder beside the main checkout is looked at too.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _candidates() -> list[Path]:
    found = [ROOT.parent / "shared"]
    git = ROOT / ".git"
    if git.is_file():
        text = git.read_text().strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text.removeprefix("gitdir:").strip())
            if not gitdir.is_absolute():
                gitdir = (ROOT / gitdir).resolve()
            # <main>/.git/worktrees/<name>: the main checkout is three levels up.
            found.append(gitdir.parent.parent.parent.parent / "shared")
    return found


def shared_dir() -> Path:
    """The first ``shared`` folder that exists; ``../shared`` when none does (tests then
    fail with that path in their message)."""
    candidates = _candidates()
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = shared_dir()
