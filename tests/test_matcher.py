"""The question matcher: the intent a customer gets, or an honest fallback."""
from __future__ import annotations

import shutil

import pytest

from bot.config import MatchingConfig
from bot.kb import load_kb
from bot.understanding.matcher import ANSWER_THRESHOLD, Match, Matcher, attach_matcher
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def matcher(kb) -> Matcher:
    """The shipped knowledge base's matcher."""
    return attach_matcher(kb).matcher


@pytest.mark.parametrize("text, intent", [
    ("数电配置里找不到乐企联用", "leqi-channel-missing"),
    ("乐琪通道出不来", "leqi-channel-missing"),                       # typo 乐琪
    ("樂企聯用的通道沒有顯示", "leqi-channel-missing"),                # traditional characters
    ("乐企连用通道看不见", "leqi-channel-missing"),                   # typo 连用
    ("好的 收到", "thanks"),
    ("老师你好，乐企通道不显示，在线等", "leqi-channel-missing"),     # courtesy around the question
    ("急急急 单位ID填反了，谢谢", "leqi-ids-swapped"),
    ("感谢帮助", "thanks"),                                           # courtesy alone stays small talk                                          # an acknowledgment gets a polite close
    ("晚上好", "greeting"),                                           # greeting lexicon, not a listed phrase
    ("乐器联用的通道没了怎么弄", "leqi-channel-missing"),             # voice homophone 乐器
    ("嗯就是我这边那个税局账号绑好了然后数电配置里面一直没有乐企选项啊", "leqi-channel-missing"),
    ("通道类型是不是要切换到乐企", "leqi-channel-missing"),
    ("接入单位ID跟使用单位ID弄反了", "leqi-ids-swapped"),
    ("单位id改正以后后台日志还是旧的", "leqi-ids-swapped"),
    ("缓存清理要输入的key是什么", "leqi-ids-swapped"),
    ("BDM_CACHE_CLEAR怎么打开", "leqi-ids-swapped"),
    ("人工", "human-agent"),
    ("帮我转人工", "human-agent"),
    ("帮助", "help"),
    ("谢谢啦", "thanks"),
    ("好的，谢谢你", "thanks"),
    ("你好", "greeting"),
    ("晚上好呀", "greeting"),
])
def test_answers(matcher, text, intent):
    """Typical, typo'd, traditional and voice-style questions get the right answer."""
    result = matcher.match(text)
    assert (result.decision, result.intent) == ("answer", intent), result


@pytest.mark.parametrize("text, intent", [
    ("乐企到底藏哪了", "leqi-channel-missing"),                       # slang: where did it hide
    ("leqi通道在数电配置里没出来", "leqi-channel-missing"),           # pinyin typed in Latin letters
    ("LEQI tongdao bu xianshi", "leqi-channel-missing"),              # all pinyin
    ("cache key怎么写", "leqi-ids-swapped"),                          # English words of the FAQ
    ("ID swap了, backend still old data", "leqi-ids-swapped"),
    ("客服说后台改好了，我这还是看不到", "leqi-channel-missing"),     # a follow-up: it still does not show
    ("我是上海一家公司的会计，昨天刚接手工作，前任说乐企联用的邀请接受过了，今天一看数电配置里根本"
     "没有乐企通道，领导催得急，麻烦看看", "leqi-channel-missing"),   # the problem in the middle of context
    ("那我是要重新登录一下再去数电配置点更新吗", "leqi-channel-missing"),  # a question about step 3
    ("两个单位ID调转咗，改返啦但系后台仲系旧嘅", "leqi-ids-swapped"),   # Cantonese
    ("在马", "greeting"), ("3q", "thanks"), ("你都能帮我干点啥", "help"), ("好的我试试", "thanks"),
    ("客服", "human-agent"), ("我要投诉", "human-agent"), ("能不能让人工来处理", "human-agent"),
    ("数电配置的下拉里只有“默认”“税控”，朋友公司那边是有“乐企联用”的。邀请前天就接受了。为什么就是不显示？",
     "leqi-channel-missing"),                                       # a bare last question about what came before
    ("leqi tongdao zai shudian peizhi li mei you", "leqi-channel-missing"),  # "you" is 有 among pinyin
    ("两个单位ID填反后我改回来了，可后台还是旧的，是不是哪里没同步", "leqi-ids-swapped"),  # 哪里 = somewhere
    ("那个ID我照你们说的做了，页面已经改对，开票还是报错", "leqi-ids-swapped"),  # the page fixed, no cache cleared yet
    ("谢谢小助手么么哒", "thanks"), ("真给力，谢了老铁", "thanks"), ("good morning 小助手", "greeting"),
    ("有没有使用指南", "help"), ("你讲的我看不懂，帮我找个人工", "human-agent"),
    ("邀请接好了，数电配置里乐企通道选不上", "leqi-channel-missing"),
    ("两个单位ID填反了，改过来后台还是旧的，缓存key怎么写？另外问下发票备注能不能改", "leqi-ids-swapped"),  # 能不能改 asks
    ("单位ID改正后日志里还是反的，缓存去哪里清", "leqi-ids-swapped"),  # a log, then where to clear
    ("我是新来的出纳，对这套系统不熟，领导让我来问问。你都能回答什么问题？", "help"),  # help after a story
    ("不是开票报错，是数电配置里根本没有乐企通道", "leqi-channel-missing"),  # 不是A，是B: not A
    ("哈喽，早晨", "greeting"), ("嗯，你好，在不在呀", "greeting"),       # 在不在 asks: not an acknowledgment
    ("感谢贵司的及时支持，问题已恢复正常", "thanks"),
    ("乐企通道看不到，是不是因为我没有权限", "leqi-channel-missing"),  # a guess at the cause, not an access question
    ("尊敬的客服：我单位已接受乐企联用邀请并完成账号配置，然而数电配置中均未见该通道，恳请指点。",
     "leqi-channel-missing"),                                       # formal: 均未见
    ("上周审计的人来了，今天发现两个单位ID填反了，改了以后后台日志还是旧的", "leqi-ids-swapped"),  # not an audit log
    ("這個機器人可以幫我處理哪些問題？", "help"), ("Hi，新关注的，say hello", "greeting"),
    ("We accepted the 乐企 invitation, but there is no 乐企 option in 数电配置, any idea?", "leqi-channel-missing"),
    ("乐企channel在数电配置not available，invitation已accept", "leqi-channel-missing"),
    ("你们好，早上好", "greeting"), ("别整自动回复了，来个活人", "human-agent"),
    ("页面上改对了，可后台收到的还是填反的", "leqi-ids-swapped"),        # corrected, still swapped
    ("还没到填单位ID那一步，数电配置里就没有乐企联用通道", "leqi-channel-missing"),  # the IDs are not the problem
    ("两个问题：一是乐企单位ID填反了，改了后台还是旧的；二是年费怎么交", "leqi-ids-swapped"),  # the fee is the other one
    ("我的税号是91110108551385082Q，缓存key中间要不要加个空格", "leqi-ids-swapped"),  # 加个 is not 价格
    ("按你说的清了缓存，开票就过了，太感谢了", "thanks"), ("你这个机器人主要能帮我们处理哪些问题", "help"),
    ("數電配置見唔到樂企通道，點算", "leqi-channel-missing"), ("帮我把乐企通道弄出来", "leqi-channel-missing"),
    ("le qi tong dao zai shu dian pei zhi li kan bu dao", "leqi-channel-missing"),  # pinyin, a syllable a word
    ("我们邀请接受了，数电配置里找乐企通道么有，咋弄", "leqi-channel-missing"),   # north-western 么有 = 没有
    ("我是新来的出纳，刚关注公众号，先来打个招呼", "greeting"), ("老铁们好，来报个到", "greeting"),
    ("那缓存是在开发平台清还是在发票系统里清？乐企单位ID填反那个", "leqi-ids-swapped"),  # 还是 = or
    ("缓存key就是税号后面接fillCombineLeqiInfo，no space对吧", "leqi-ids-swapped"),
    ("是不是要后台开权限？乐企通道在数电配置里没有，邀请已接", "leqi-channel-missing"),  # a guess at the cause
    ("情况说明：1. 已接受乐企联用邀请；2. 账号已配置；3. 数电配置中未出现乐企联用通道。请告知处理方式",
     "leqi-channel-missing"),                                       # a structured note: 未出现
    ("在不在呀小可爱", "greeting"), ("what can you help me with ah", "help"),
])
def test_understands_people_as_they_write(matcher, text, intent):
    """Long, colloquial, mixed-language and follow-up messages get the right answer."""
    result = matcher.match(text)
    assert (result.decision, result.intent) == ("answer", intent), result


@pytest.mark.parametrize("text", [
    "乐企是什么意思",                                # shares words with both FAQs, is neither
    "没有收到乐企联用邀请怎么办",                    # the FAQ's premise negated
    "数电配置里没有乐企通道，不过我们好像压根没收到过邀请",
    "数电配置里的通道类型有哪些",
    "使用单位ID在哪里能查到",
    "乐企的证书在哪下载",                            # a topic no answer has (证书/下载)
    "电脑浏览器的缓存怎么清",                        # another cache
    "开发平台里搜bdm_cache_clear提示没有权限",      # the steps, but an access problem
    "乐企用着不习惯，想把通道改回原来默认的",
    "发票云客服工作时间",
    "开票员的手机号换了，数电配置里在哪更新",          # another setting of the page
    "缓存清理那个工具能不能顺便把发票抬头的缓存也清了",  # the tool, another cache
    "点“同步”提示您没有该功能的权限",                  # an access problem, the label quoted
    "邀请接受了，税控盘也买了，专管员电话为什么打不通",  # a last question about something else
    "清理缓存会不会把历史发票也删掉",                    # a worry about the steps
    "单位ID填反改过了，后台日志在哪看",                  # where the log is
    "开发平台的缓存清理是不是要管理员才能用",            # a permission question about the steps
    "公司搬了新地址，已经改好了，但发票上还是老地址",    # other data that stays old
    "乐企都弄好了，谢谢。另外进项发票能批量下载吗？",    # thanks, then another question
    "好的，那还有个问题呢？",                            # …呢？ asks: not an acknowledgment
    "喂，新开票员怎么加",                                # a greeting word, then a how-question
    "乐企联用的邀请去哪里接受？",                        # not accepted yet
    "好的，然后呢",                                      # asks what next: not an acknowledgment
    "乐企通道有了，开票的时候发票预览为啥不显示",        # the channel is there; the question is about another thing
    "乐企联用是不是一定要用电子税局账号",                # what is required
    "缓存key旁边还有个缓存类型下拉，选哪个",              # a field the steps do not name
    "切到乐企以后，还能用数字账户开票吗",                # a risk question about the switch
    "乐企联用价格多少",                                  # the fee, heard by its characters
    "我们在西藏，乐企联用在这边能用吗，税局开通了没有？",  # 开通了没有 asks whether; nothing is missing
    "公司改名了，税号没变，乐企那边要不要重新弄",        # another data object changed
    "开发平台的账号怎么开通？",                          # getting into the platform
])
def test_look_alikes_are_not_answered(matcher, text):
    """A question missing a defining concept, or naming an excluding one, is not that FAQ."""
    result = matcher.match(text)
    assert result.decision != "answer", result


@pytest.mark.parametrize("text", [
    "乐企联用怎么收费",
    "怎么开红字发票",
    "乐企联用需要什么条件",
    "乐企平台怎么注册",
    "乐企联用开票限额",
    "数电配置怎么改密码",
    "税号填错了怎么改",
    "乐企联用怎么收费，谢谢",                                      # courtesy does not rescue a non-FAQ                                            # 填错 is not 填反 (swapped IDs)
    "你好，我想问一下发票怎么冲红",        # contains 你好 but is not a greeting
    "电子税局的密码找回",
    "今天吃什么",
    "？？？",
    "",
])
def test_rejects_out_of_scope(matcher, text):
    """Questions that only share words with an FAQ are not answered."""
    result = matcher.match(text)
    assert result.decision != "answer" and result.intent is None, result


@pytest.mark.parametrize("text", [
    "91110108551385082Q",                       # a bare tax ID
    "我们税号是91110108551385082Q，麻烦了",
    "\x00\x01]]><xml>乐企\u202e",              # control characters and markup
    "😀" * 50,
    "乐企" * 5000,                               # huge input: matched on its start, still no answer
    "qwerty asdf zxcv",
])
def test_odd_input_gets_no_answer(matcher, text):
    """Odd or hostile input never crashes and never gets an FAQ answer."""
    result = matcher.match(text)
    assert result.intent is None and result.decision in ("none", "clarify")


def test_long_question_with_greeting_is_not_a_greeting(matcher):
    """A greeting in front of a question does not hide the question."""
    result = matcher.match("你好，乐企联用的通道在数电配置里不显示")
    assert result.intent == "leqi-channel-missing"


@pytest.mark.parametrize("text", ["乐企", "乐企联用"])
def test_ambiguous_question_asks_to_clarify(matcher, text):
    """A question that fits both FAQs equally makes the bot ask which one."""
    result = matcher.match(text)
    assert result.decision == "clarify" and result.intent is None
    assert {i for i, _ in result.candidates[:2]} == {"leqi-channel-missing", "leqi-ids-swapped"}


@pytest.mark.parametrize("text", ["乐企通道不显示", "乐企", "怎么开红字发票", "人工"])
def test_candidates_are_ranked_and_bounded(matcher, text):
    """Candidates: at most 5, best first, scores 0..100, top one is the score."""
    result = matcher.match(text)
    scores = [s for _, s in result.candidates]
    assert len(scores) <= 5 and scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 100.0 for s in scores) and result.score == (scores[0] if scores else 0.0)


@pytest.mark.parametrize("matching, decision", [
    (None, "answer"),
    (MatchingConfig(answer_threshold=99.5), "none"),
    (MatchingConfig(clarify_margin=99.0), "clarify"),
])
def test_config_thresholds_change_the_decision(kb, matching, decision):
    """[matching] thresholds from the config change what the user gets."""
    matcher = Matcher(kb, *((matching.answer_threshold, matching.clarify_margin) if matching else ()))
    assert matcher.match("数电配置里乐企通道不显示").decision == decision


def test_zero_config_uses_the_measured_defaults(kb):
    """0 in the config means the measured default threshold."""
    assert Matcher(kb, 0.0, 0.0).answer_threshold == ANSWER_THRESHOLD


THIRD_INTENT = """---
id: leqi-quota
title: 乐企联用开票额度不足
question: 乐企联用开票提示额度不足怎么办？
kind: faq
similar:
  - 乐企开票可用额度用完了
keywords: [额度, 开票额度, 限额]
---
请在电子税局申请调整开票额度。
"""
FOURTH_INTENT = """---
id: cert-expired
title: 乐企证书过期
question: 乐企开票提示证书过期怎么办？
kind: faq
concepts:
  cert: [证书, 数字证书, 乐企证书, certificate]
  expired: [过期, 失效, 到期, expired]
  buy: [购买, 买, 价格, 多少钱]
needs:
  - [cert, expired]
excludes:
  - [buy]
---
请在开发平台重新下载证书。
"""


@pytest.fixture(scope="module")
def three_faq_matcher(tmp_path_factory) -> Matcher:
    """The shipped answers plus a third FAQ written by an author."""
    folder = tmp_path_factory.mktemp("kb") / "answers"
    shutil.copytree(ROOT / "answers", folder)
    (folder / "leqi-quota.md").write_text(THIRD_INTENT, encoding="utf-8")
    (folder / "cert-expired.md").write_text(FOURTH_INTENT, encoding="utf-8")
    return attach_matcher(load_kb(folder)).matcher


@pytest.mark.parametrize("text, intent", [
    ("乐企联用开票限额不够了", "leqi-quota"),
    ("乐企开票额度不足", "leqi-quota"),
    ("數電配置沒有樂企通道", "leqi-channel-missing"),
    ("接入单位ID填反了", "leqi-ids-swapped"),
    ("谢谢", "thanks"),
    ("开票的时候一直提示证书已经失效了", "cert-expired"),      # an author's concepts, no code
    ("certificate expired了咋办", "cert-expired"),
    ("证书过期了想买个新的多少钱", None),                      # its `excludes`
    ("乐企证书在哪下载", None),                                # its need is not there
])
def test_a_third_faq_is_matched_without_code_changes(three_faq_matcher, text, intent):
    """An author's new FAQ files are matched (by similarity, or by their own concepts); the old ones still are."""
    result = three_faq_matcher.match(text)
    assert (result.decision == "answer", result.intent) == (intent is not None, intent), result


def test_match_is_a_frozen_value():
    """A Match cannot be altered by its consumers."""
    match = Match("none", None, 0.0, ())
    with pytest.raises(AttributeError):
        match.score = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("text", ["乐企联用通道不显示怎么办", "你好", "转人工", "红字发票怎么开", "乐企", ""])
def test_a_repeated_question_gets_the_verdict_it_got_first(matcher, text):
    first = matcher.match(text)
    assert matcher.match(text) == first == matcher.signals(text, detail=False).match
