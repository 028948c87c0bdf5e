"""scim/remembered.py: answers kept for at most ``recheck``, least recently used dropped first,
forgotten at once, and never an answer read before a forget() that overtook it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from webwork_sso_middleware.scim.remembered import Remembered


def counting(answers: dict[str, int]) -> tuple[list[str], Callable[[str], Callable[[], int]]]:
    """The keys asked, in order, and look_up(key): a look-up of ``answers[key]`` that counts."""
    asked: list[str] = []

    def look_up(key: str) -> Callable[[], int]:
        def ask() -> int:
            asked.append(key)
            return answers[key]

        return ask

    return asked, look_up


def test_an_answer_is_kept_for_the_recheck_time_then_asked_again():
    asked, look_up = counting({"a": 1})
    memory: Remembered[str, int] = Remembered(recheck=dt.timedelta(seconds=0.2), max_entries=10)
    assert [memory.get("a", look_up("a")) for _ in range(3)] == [1, 1, 1]
    assert asked == ["a"]
    time.sleep(0.25)
    assert memory.get("a", look_up("a")) == 1
    assert asked == ["a", "a"]


def test_the_least_recently_used_answer_goes_first():
    asked, look_up = counting({"a": 1, "b": 2, "c": 3})
    memory: Remembered[str, int] = Remembered(recheck=dt.timedelta(seconds=60), max_entries=2)
    memory.get("a", look_up("a"))
    memory.get("b", look_up("b"))
    memory.get("a", look_up("a"))  # a is now the more recent
    memory.get("c", look_up("c"))  # b goes
    assert len(memory) == 2
    memory.get("a", look_up("a"))
    memory.get("b", look_up("b"))
    assert asked == ["a", "b", "c", "b"]


def test_keep_decides_what_is_remembered_and_zero_recheck_keeps_nothing():
    asked, look_up = counting({"wrong": 0, "right": 1})
    memory: Remembered[str, int] = Remembered(recheck=dt.timedelta(seconds=60), max_entries=9)
    for _ in range(2):
        memory.get("wrong", look_up("wrong"), keep=bool)
        memory.get("right", look_up("right"), keep=bool)
    assert asked == ["wrong", "right", "wrong"]
    never: Remembered[str, int] = Remembered(recheck=dt.timedelta(0), max_entries=9)
    never.get("right", look_up("right"))
    never.get("right", look_up("right"))
    assert len(never) == 0 and asked[-2:] == ["right", "right"]


def test_forget_drops_everything_and_an_overtaken_look_up_is_not_kept():
    answers = {"a": 1}
    asked, look_up = counting(answers)
    memory: Remembered[str, int] = Remembered(recheck=dt.timedelta(seconds=60), max_entries=9)
    memory.get("a", look_up("a"))
    answers["a"] = 2
    memory.forget()
    assert len(memory) == 0

    def overtaken() -> int:
        read = look_up("a")()  # read before the change below...
        answers["a"] = 3
        memory.forget()  # ...which another thread made and forgot meanwhile
        return read

    assert memory.get("a", overtaken) == 2  # its own caller gets what it read
    assert memory.get("a", look_up("a")) == 3  # later callers: asked again, not the stale 2
