"""compile_strftime: the per-second cache never stands in for a second it was not
filled for."""

from hekapy.collector.engine.strftime import compile_strftime


def test_second_minus_one_renders_on_the_first_call():
    render = compile_strftime("%Y-%m-%dT%H:%M:%S")
    assert render(-1_000_000_000) == "1969-12-31T23:59:59"
    assert render(-500_000_000) == "1969-12-31T23:59:59"  # floor: still second -1


def test_the_cache_follows_the_second():
    render = compile_strftime("%H:%M:%S")
    assert [render(ns) for ns in (0, 999_999_999, 1_000_000_000, 0)] == \
        ["00:00:00", "00:00:00", "00:00:01", "00:00:00"]
