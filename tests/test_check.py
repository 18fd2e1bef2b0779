"""`check_answers`: every broken answers folder is reported with its file and line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.check import check_answers, normalise_question

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "fixtures" / "answers_bad"


def broken_copy(tmp_path: Path, overlay: str | None, remove: tuple[str, ...] = ()) -> Path:
    """The shipped answers/ with a fixture folder copied over it and some files removed."""
    folder = tmp_path / "answers"
    shutil.copytree(ROOT / "answers", folder)
    if overlay:
        shutil.copytree(BAD / overlay, folder, dirs_exist_ok=True)
    for name in remove:
        (folder / name).unlink()
    return folder


def test_shipped_answers_pass():
    """The answers we ship have no problems."""
    assert check_answers(ROOT / "answers") == []


@pytest.mark.parametrize("overlay, remove, where, words", [
    ("missing-title", (), "thanks.md:1", "lacks title"),
    ("unknown-var-intent", (), "help.md:10", "unknown variable 'customer_name'"),
    ("unknown-var-text", (), "texts/cancelled.md:5", "unknown variable 'ticket'"),
    ("unknown-attribute", (), "texts/ticket-status.md:7", "no attribute 'owner'"),
    ("syntax-error", (), "thanks.md:8", "template error"),
    ("shared-similar", (), "leqi-channel-missing.md:10", "also in 'channel-hidden'"),
    ("too-long", (), "long-answer.md:8", "no `short` fallback"),
    ("unknown-then", (), "human-agent.md:8", "unknown then 'handof'"),
    ("stray-text", (), "texts/welcom.md:1", "not used by the bot"),
    ("handoff-missing-done", (), "printer-setup.md:7", "needs handoff: done"),
    ("handoff-unknown-key", (), "printer-setup.md:1", "unknown handoff key(s) donne"),
    ("handoff-unknown-var", (), "printer-setup.md:10", "unknown variable 'customer_name'"),
    ("handoff-without-then", (), "printer-setup.md:6", "only used with then: handoff"),
    ("cache-key-no-template", (), "printer-setup.md:7", "needs collect: tax_id and with_tax_id"),
    ("reply-too-long", (), "printer-setup.md:13", "before the tax-ID ask is 342 characters"),
    (None, ("help.md",), "help.md:1", "required intent 'help' is missing"),
    (None, ("texts/voice-empty.md",), "texts/voice-empty.md:1", "text 'voice-empty' is missing"),
    pytest.param("bad-yaml", (), "greeting.md:6", "bad front matter"),  # where the [ opens
    ("unknown-concept", (), "cert-expired.md:6", "unknown concept 'expird'"),
    ("only-absent-need", (), "cert-expired.md:6", "names only absent concepts"),
    ("bad-coverage", (), "cert-expired.md:11", "coverage must be a number in (0, 1]"),
    ("menu-unknown", (), "help.md:20", "menu names unknown intent 'leqi-id-swaped'"),
    ("similar-not-recognised", (), "cert-expired.md:7", "'证书在哪下载' is not recognised as 'cert-expired'"),
])
def test_one_problem_named_with_file_and_line(tmp_path, overlay, remove, where, words):
    """Each broken folder yields exactly one problem, at the file and line to fix."""
    folder = broken_copy(tmp_path, overlay, remove)
    problems = check_answers(folder)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{folder}/{where}: ") and words in problems[0]


def test_duplicate_id_names_both_files(tmp_path):
    """A second file claiming an existing id is reported, with the first file named."""
    folder = broken_copy(tmp_path, "duplicate-id")
    problems = check_answers(folder)
    assert f"{folder}/greeting.md:1: duplicate id 'greeting' (also {folder}/greeting-again.md)" \
        in problems


@pytest.mark.parametrize("overlay", ["ok-long-with-short"])
def test_long_answer_with_short_fallback_passes(tmp_path, overlay):
    """An answer over 2048 bytes is fine when it has a `short` template."""
    assert check_answers(broken_copy(tmp_path, overlay)) == []


def test_missing_folder(tmp_path):
    """A folder that does not exist is one clear problem, not a crash."""
    problems = check_answers(tmp_path / "nope")
    assert len(problems) == 1 and "not found" in problems[0]


@pytest.mark.parametrize("a, b", [
    ("乐企联用的通道，在数电配置里不出现！", "乐企联用的通道在数电配置里不出现"),
    ("Thank You", "thank you"),
    ("ＨＩ？", "hi"),
])
def test_normalise_question(a, b):
    """Questions differing only in width, case, punctuation or spaces count as the same."""
    assert normalise_question(a) == normalise_question(b)

