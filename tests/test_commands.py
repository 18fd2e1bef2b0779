"""The dialogue's commands in the words people use, and the messages that only look like them."""
from __future__ import annotations

import pytest

from bot.understanding.commands import SHORT_COMMANDS, says

ALL = SHORT_COMMANDS + ("still_missing", "resolved")


@pytest.mark.parametrize("text, command", [
    ("转人工", "human"), ("客服", "human"), ("能不能让人工来处理", "human"), ("我要投诉", "human"),
    ("别机器人了，叫个真人来，说半天没用", "human"), ("human agent please", "human"), ("我要找人工", "human"),
    ("进度", "status"), ("我的工单进度怎么样了", "status"), ("我提交的那个问题处理到哪一步了", "status"),
    ("查一下进度", "status"), ("工单状态？", "status"),
    ("取消", "cancel"), ("算了", "cancel"), ("不用了", "cancel"),
    ("忘记税号", "forget"), ("帮我把税号删了", "forget"),
    ("帮助", "help"), ("菜单", "help"), ("你都能帮我干点啥", "help"),
    ("结束人工", "leave_human"), ("不需要人工了", "leave_human"),
    ("是的", "confirm"), ("对", "confirm"), ("1", "confirm"), ("ok", "confirm"),
    ("好的", "ack"), ("嗯", "ack"), ("好的我试试", "ack"), ("收到", "ack"),
    ("更新了还是没有", "still_missing"), ("我点了同步，刷新之后还是没有乐企联用", "still_missing"),
    ("还是不显示", "still_missing"), ("还是没显示啊", "still_missing"),  # little else: after the update
    ("乐企通道有了，谢谢", "resolved"), ("更新以后显示了", "resolved"),
])
def test_command(text, command):
    """Each command in everyday words."""
    assert says(text, command), [c for c in ALL if says(text, c)]


@pytest.mark.parametrize("text, command", [
    ("取消发票", "cancel"),                             # a question about invoices, not leaving
    ("人工智能开票准不准", "human"),
    ("还是不显示乐企联用通道", "still_missing"),       # no update, the subject named: the FAQ answers it
    ("乐企通道显示了吗", "resolved"),                  # a question
    ("乐企通道还是没有", "resolved"),
    ("好的，那怎么开红字发票呢", "ack"),                # an acknowledgment that asks something else
    ("客服说后台改好了，我这还是看不到", "human"),       # talks about 客服, does not ask for one
    ("对了，红字发票怎么开", "confirm"),
    ("我的税号是91110108551385082Q", "confirm"),
    ("进度条一直卡住，开不了票", "status"),
])
def test_not_the_command(text, command):
    """Messages that share a word with a command are not that command."""
    assert not says(text, command)
