import pytest

pytest_plugins = ["pytester"]

_TIMINGS: dict[str, tuple] = {}


@pytest.fixture(scope="session")
def tiny_timings() -> dict[str, tuple]:
    """family -> (wall s, CPU s, output shape, steps) of one tiny generation; printed after the run."""
    return _TIMINGS


def pytest_terminal_summary(terminalreporter):
    if not _TIMINGS:
        return
    terminalreporter.section("tiny pipelines: one generation on this CPU")
    for family, (wall, cpu, shape, steps) in sorted(_TIMINGS.items()):
        terminalreporter.write_line(f"{family:11s} {wall:6.2f} s wall {cpu:6.2f} s CPU  {steps} steps  output {shape}")
