"""The webhook benchmark's traffic: a realistic mix of customer messages, pre-encrypted for wrk.

Each customer (a distinct openid) plays one short script: an FAQ question, small talk, an
out-of-scope question, 转人工, an acknowledgment, or an FAQ question followed by their tax ID
(which opens a ticket). Every message has its own MsgId, timestamp+nonce and ciphertext, signed
as WeChat signs safe-mode callbacks. Wording varies (prefixes, contexts, suffixes) so that caches
of cleaned text see roughly what real traffic gives them. The scripts' shares:

| script | share | what the bot does |
| --- | --- | --- |
| FAQ question (channel missing / ids swapped) | 35 % | answer, ask for the tax ID |
| FAQ question, then the tax ID | 2 × 10 % | answer, then open a ticket |
| small talk (你好, 谢谢, 帮助) | 20 % | short text |
| out of scope (红字发票, 收费 …) | 10 % | fallback, logged for authors |
| 转人工 | 10 % | open a human ticket |
| acknowledgment (好的, 嗯) | 5 % | short text or nothing |
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import urlencode

from stdnum.cn import uscc

from tests.wechat_sim import WeChatSim, text_message

PREFIXES = ("", "请问", "老师你好，", "您好，", "麻烦问下，")
CONTEXTS = ("", "我们公司", "今天", "刚才", "财务这边")
SUFFIXES = ("", "？", "，谢谢", "，急", "，在线等")
FAQ = ("数电配置里没有乐企联用通道", "乐企联用通道不显示怎么办", "数电配置页面找不到乐企联用",
       "开通了乐企但是通道里没有", "乐企通道在数电配置里看不到", "接入单位ID和使用单位ID填反了",
       "乐企联用开票信息填反了，改完还是报错", "乐企的单位ID改了以后接口还是旧数据",
       "乐企缓存怎么清理", "已经更正了单位ID但是开票还是报错")
SMALL_TALK = ("你好", "您好", "在吗", "谢谢", "谢谢你", "帮助", "菜单", "hello")
OUT_OF_SCOPE = ("红字发票怎么开", "乐企联用怎么收费", "数电配置怎么改密码", "发票抬头写错了怎么办",
                "开票软件闪退", "怎么申请税控盘", "电子发票能报销吗")
HUMAN = ("转人工", "人工客服", "我要找人工", "能不能让人工来处理", "客服在吗，转人工")
ACK = ("好的", "嗯", "ok", "好的我试试", "收到")
SCRIPTS = (("faq", 35), ("faq+taxid", 10), ("smalltalk", 20), ("out", 10), ("human", 10), ("ack", 5))


def _phrase(rng: random.Random, core: str) -> str:
    """A question worded one of many ways."""
    return f"{rng.choice(PREFIXES)}{rng.choice(CONTEXTS)}{core}{rng.choice(SUFFIXES)}"


def tax_id(rng: random.Random) -> str:
    """A valid 18-character 统一社会信用代码."""
    body = "91" + "".join(rng.choice("0123456789") for _ in range(6)) + "".join(
        rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
    return body + uscc.calc_check_digit(body)


def script(rng: random.Random, kind: str) -> list[str]:
    """The texts one customer sends."""
    if kind == "faq":
        return [_phrase(rng, rng.choice(FAQ))]
    if kind == "faq+taxid":
        return [_phrase(rng, rng.choice(FAQ[:5])), f"我们税号是 {tax_id(rng)}，麻烦了"]
    pool = {"smalltalk": SMALL_TALK, "out": OUT_OF_SCOPE, "human": HUMAN, "ack": ACK}[kind]
    return [rng.choice(pool) if kind in ("smalltalk", "ack") else _phrase(rng, rng.choice(pool))]


def conversations(rng: random.Random, count: int) -> list[list[str]]:
    """Scripts for customers until they send `count` messages in all."""
    kinds, weights = zip(*SCRIPTS)
    found, sent = [], 0
    while sent < count:
        texts = script(rng, rng.choices(kinds, weights)[0])
        found.append(texts)
        sent += len(texts)
    return found


def interleave(chats: list[list[str]], gap: int) -> list[tuple[int, str]]:
    """(customer, text) in sending order: a customer's second message comes `gap` messages later."""
    order: list[tuple[int, str]] = []
    later: dict[int, list[tuple[int, str]]] = {}
    for who, texts in enumerate(chats):
        order.extend(later.pop(len(order), []))
        order.append((who, texts[0]))
        for n, text in enumerate(texts[1:], 1):
            later.setdefault(len(order) + gap * n, []).append((who, text))
    for pending in later.values():
        order.extend(pending)
    return order


def write_requests(path: Path, account, count: int, run_id: int, seed: int) -> int:
    """Write `count` signed, encrypted deliveries to `path` (one "PATH\\tBODY" per line); how many.

    `account` has app_id, token and aes_key; nonces are distinct, timestamps current.
    """
    rng = random.Random(seed)
    lines = []
    for serial, (who, text) in enumerate(interleave(conversations(rng, count), gap=97)[:count]):
        now = int(time.time())
        xml = text_message(text, user=f"oBench{run_id:06d}{who:016d}", msg_id=f"{run_id:06d}{serial:012d}",
                           created=now)
        sim = WeChatSim(token=account.token, app_id=account.app_id, encoding_aes_key=account.aes_key,
                        now=now, nonce=f"{run_id}{serial:09d}")
        req = sim.message_request(xml, mode="safe")
        body = req["data"].decode("utf-8").replace("\n", "")
        lines.append(f"{req['path']}?{urlencode(req['query_string'])}\t{body}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)
