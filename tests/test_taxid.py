"""Tax ID extraction, validation and masking (SPEC behaviour 5)."""
from __future__ import annotations

import pytest

from bot.taxid import TaxIdResult, find_tax_id, mask_tax_id, only_tax_id

USCC = "91110108551385082Q"  # valid check digit
BAD = "91110108551385082X"  # same number, wrong check digit


@pytest.mark.parametrize("text, value, status", [
    (USCC, USCC, "valid"),
    (f"我们税号是 {USCC}，麻烦了", USCC, "valid"),
    (f"税号：{USCC.lower()}", USCC, "valid"),
    ("９１１１０１０８５５１３８５０８２Ｑ", USCC, "valid"),  # full-width
    ("9111 0108 5513 8508 2Q", USCC, "valid"),  # grouped by spaces
    ("911101-0855-1385-082Q", USCC, "valid"),  # hyphens
    ("9111\u30000108\u30005513\u300085082Q", USCC, "valid"),  # ideographic spaces
    (f"{USCC}fillCombineLeqiInfo", "", "not_found"),  # glued to a word: not a tax ID
    (BAD, BAD, "bad_check_digit"),
    (f"税号 {BAD} 谢谢", BAD, "bad_check_digit"),
    ("9111010855138508ZQ", "9111010855138508ZQ", "bad_check_digit"),  # Z is never used
    (f"{BAD} 不对，是 {USCC}", USCC, "valid"),  # the valid one wins
    (f"电话 13800138000，税号 {USCC}", USCC, "valid"),
    ("110105600037341", "110105600037341", "valid"),  # 15: region + organisation code
    ("11010560003734X", "11010560003734X", "valid"),  # 15 with X check char
    ("11010519491231001", "11010519491231001", "valid"),  # 17: old ID card + serial
    ("11010519491231002X01", "11010519491231002X01", "valid"),  # 20: ID card + serial
    ("010105600037341", "", "not_found"),  # 15 but region code starts with 0
    ("11010519491231002X0", "", "not_found"),  # 19 chars
    ("13800138000", "", "not_found"),  # mobile phone
    ("138 0013 8000", "", "not_found"),
    ("2024-01-15", "", "not_found"),  # date
    ("20240115 10:30", "", "not_found"),
    ("T000123", "", "not_found"),  # ticket number
    ("工单T000123进度", "", "not_found"),
    ("13800138000 2024 01", "", "not_found"),  # phone + date never join into 17 digits
    ("数电配置不显示乐企通道", "", "not_found"),
    ("", "", "not_found"),
])
def test_find_tax_id(text, value, status):
    """The candidate is normalised and classified; phones, dates and tickets are ignored."""
    assert find_tax_id(text) == TaxIdResult(value, status)


@pytest.mark.parametrize("value, masked", [
    (USCC, "9111***082Q"),
    ("110105600037341", "1101***7341"),
    ("12345678", "***"),
    ("", ""),
])
def test_mask_tax_id(value, masked):
    """Logs never see the middle of a tax ID."""
    assert mask_tax_id(value) == masked


@pytest.mark.parametrize("text, alone", [
    ("91110108551385082Q", True),
    ("税号：91110108551385082Q", True),
    ("我们公司税号是 9111 0108 5513 8508 2Q", True),
    ("my tax id is 91110108551385082Q", True),
    ("91110108551385082Q 开票软件闪退", False),   # a question with the tax ID in it
    ("why is invoicing failing 91110108551385082Q", False),
    ("91110108551385082X", False),                 # the check digit is wrong
])
def test_a_tax_id_sent_on_its_own(text, alone):
    """Only the tax ID and words naming it: the customer sent it before saying what the problem is."""
    assert only_tax_id(text) is alone
