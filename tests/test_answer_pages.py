"""FAQ web pages: the steps, and screenshots from the project's own copy next to the step they
illustrate — a clear caption when the copy is missing, never a third-party hotlink."""
from __future__ import annotations

import re
import shutil
from dataclasses import replace

import pytest

from bot.app import create_app
from bot.channels.web import answer_blocks
from bot.config import StorageConfig, WeChatConfig, load_config
from tests.conftest import ROOT

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


@pytest.fixture
def answers(tmp_path):
    """A copy of the shipped answers/ whose images/ folder the test fills."""
    folder = tmp_path / "answers"
    shutil.copytree(ROOT / "answers", folder, ignore=shutil.ignore_patterns("images"))
    (folder / "images").mkdir()
    return folder


def client_for(answers, tmp_path):
    """A test client of the app serving `answers`."""
    config = replace(load_config(None), wechat=WeChatConfig(token="tok"), answers_dir=answers,
                     storage=StorageConfig(url=f"sqlite:///{tmp_path}/bot.db"))
    return create_app(config).test_client()


def test_a_missing_copy_shows_its_caption_and_no_hotlink(answers, tmp_path):
    body = client_for(answers, tmp_path).get("/answers/leqi-channel-missing").get_data(as_text=True)
    assert "通道类型" in body and body.count('class="shot-missing"') == 2
    assert 'aria-label="截图暂缺：数电配置中找不到“乐企联用”通道"' in body
    assert "cdn.nlark.com" not in body and "<img" not in body


def test_a_kept_copy_is_served_from_the_project(answers, tmp_path):
    (answers / "images" / "leqi-channel-missing-2.png").write_bytes(PNG)
    client = client_for(answers, tmp_path)
    body = client.get("/answers/leqi-channel-missing").get_data(as_text=True)
    img = re.search(r'<img src="([^"]+)" alt="([^"]+)"', body)
    assert img.groups() == ("/answers/images/leqi-channel-missing-2.png", "运营在后台将通道类型改为“乐企”")
    step2, step3 = body.index("2. 运营人员"), body.index("3. 收到")
    assert step2 < body.index("<img") < step3  # under the step it illustrates
    with client.get(img.group(1)) as image:
        assert image.status_code == 200 and image.data == PNG and image.mimetype == "image/png"


@pytest.mark.parametrize("path", ["/answers/images/..%2Fleqi-channel-missing.md", "/answers/images/x.svg",
                                  "/answers/images/nothing.png", "/answers/images/.hidden.png"])
def test_only_image_files_of_the_folder_are_served(answers, tmp_path, path):
    assert client_for(answers, tmp_path).get(path).status_code == 404


@pytest.mark.parametrize("answer_id", ["greeting", "%3Cscript%3E", "nope"])
def test_only_faq_pages_exist(answers, tmp_path, answer_id):
    assert client_for(answers, tmp_path).get(f"/answers/{answer_id}").status_code == 404


@pytest.mark.parametrize("step, line", [(None, 0), (1, 1), (2, 2), (9, 3)])
def test_an_image_goes_under_its_step(tmp_path, step, line):
    """No step: under the first line; an unknown step: at the end."""
    blocks = answer_blocks("原因\n1. 一\n2. 二\n提示", ({"file": "", "caption": "c", "step": step, "source": ""},),
                           tmp_path)
    assert [bool(b["images"]) for b in blocks] == [i == line for i in range(4)]
