"""Answers reload (bot.reload): workers get a checked copy; a failing edit keeps the last good one."""
from __future__ import annotations

import shutil
import threading

from bot.reload import Snapshots, watch
from tests.conftest import ROOT
from tests.e2e_helpers import poll


def answers_copy(tmp_path):
    """A writable copy of the shipped answers."""
    folder = tmp_path / "answers"
    shutil.copytree(ROOT / "answers", folder)
    return folder


def test_a_passing_edit_is_a_new_snapshot_and_a_failing_one_keeps_the_old(tmp_path):
    """refresh() copies answers that pass check; broken ones leave the current copy alone."""
    folder = answers_copy(tmp_path)
    snapshots = Snapshots(folder)
    try:
        assert snapshots.refresh() and not snapshots.changed()
        first = snapshots.current
        greeting = folder / "greeting.md"
        greeting.write_text(greeting.read_text(encoding="utf-8") + "祝您工作顺利。\n", encoding="utf-8")
        assert snapshots.changed() and snapshots.refresh()
        assert "祝您工作顺利" in (snapshots.current / "greeting.md").read_text(encoding="utf-8")
        assert not first.exists()  # the old copy is gone: workers hold their answers in memory
        (folder / "thanks.md").write_text("---\nid: [broken\n---\n", encoding="utf-8")
        kept = snapshots.current
        assert not snapshots.refresh() and snapshots.current == kept
        assert "祝您工作顺利" in (kept / "greeting.md").read_text(encoding="utf-8")
    finally:
        snapshots.close()


def test_the_watch_reloads_only_edits_that_pass_check(tmp_path):
    """A changed file that passes check triggers a reload; one that fails does not."""
    folder = answers_copy(tmp_path)
    snapshots, stop, reloads = Snapshots(folder), threading.Event(), []
    snapshots.refresh()
    watch(snapshots, stop, on_change=lambda: reloads.append(1), every=0.05)
    try:
        (folder / "thanks.md").write_text("---\nid: [broken\n---\n", encoding="utf-8")
        poll(lambda: not snapshots.changed(), 10, "the broken edit to be looked at")
        assert reloads == []
        shutil.copy(ROOT / "answers" / "thanks.md", folder / "thanks.md")
        poll(lambda: reloads, 10, "the good edit to reload")
    finally:
        stop.set()
        snapshots.close()
