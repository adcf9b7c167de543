"""Progress lines where stderr is not a terminal (Rscript, knitr, nohup, CI logs)."""

from __future__ import annotations

import io

from cnnkit.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_with_rate_and_eta_when_not_a_terminal():
    log = io.StringIO()
    with Progress(10, "filters of conv2", "steps", every=0.0, stream=log) as p:
        for _ in range(10):
            p.update()
    lines = log.getvalue().splitlines()
    assert lines[0] == "filters of conv2: 0/10 steps (0%)"
    assert lines[5].startswith("filters of conv2: 5/10 steps (50%), ") and "left" in lines[5]
    assert "steps/s" in lines[5]
    assert lines[-1].startswith("filters of conv2: 10/10 steps (100%), ")
    assert "left" not in lines[-1]
    assert "\r" not in log.getvalue()


def test_lines_are_spaced_by_every_seconds():
    log = io.StringIO()
    with Progress(1000, "x", every=3600.0, stream=log) as p:
        for _ in range(1000):
            p.update()
    assert len(log.getvalue().splitlines()) == 2  # the start and the end


def test_a_bar_on_a_terminal_and_nothing_when_disabled():
    tty = _Terminal()
    with Progress(4, "x", "steps", stream=tty) as p:
        p.update(4)
    assert "\r" in tty.getvalue() and "4/4" in tty.getvalue()
    quiet = io.StringIO()
    with Progress(4, "x", stream=quiet, enabled=False) as p:
        p.update(4)
    assert quiet.getvalue() == ""


def test_duration_reads_as_time_left():
    from cnnkit.progress import duration

    assert [duration(s) for s in (42, 180, 3900)] == ["42 s", "3 min", "1 h 05 min"]
