"""Fakes of the remote APIs on 127.0.0.1, a settable clock, and the pytest fixtures that wire them.

tests/conftest.py registers this module as a plugin, so every test module can ask for the
`clock`, `wechat`, `wecom` and `robot` fixtures without importing them.
"""
from __future__ import annotations

import pytest

from tests.fake_robot import FakeRobot
from tests.fake_server import FakeServer
from tests.fake_wechat import OPENID, FakeWeChat
from tests.fake_wecom import WECOM_USER, FakeWeCom

__all__ = ["OPENID", "WECOM_USER", "FakeClock", "FakeRobot", "FakeServer", "FakeWeChat", "FakeWeCom",
           "clock", "robot", "wechat", "wecom"]


class FakeClock:
    """A settable clock for code that takes `clock=`; starts at a fixed epoch time."""

    def __init__(self, now: float = 1_800_000_000.0):
        """Start at `now`."""
        self.now = now

    def __call__(self) -> float:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """Fake time to share between the code under test and the fakes."""
    return FakeClock()


@pytest.fixture
def wechat(clock):
    """A fake WeChat API on the fake clock where OPENID wrote recently."""
    with FakeWeChat(clock=clock) as fake:
        fake.user_message(OPENID)
        yield fake


@pytest.fixture
def wecom(clock):
    """A fake WeCom app API on the fake clock whose visible range holds WECOM_USER."""
    with FakeWeCom(clock=clock) as fake:
        fake.scope.add(WECOM_USER)
        yield fake


@pytest.fixture
def robot(clock):
    """A fake WeCom group robot on the fake clock."""
    with FakeRobot(clock=clock) as fake:
        yield fake
