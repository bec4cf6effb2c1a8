import pytest
from hypothesis import settings

pytest_plugins = ["pytester"]

# unit tests are deterministic: hypothesis draws the same examples on every run and machine
settings.register_profile("sinkbench", derandomize=True, database=None)
settings.load_profile("sinkbench")

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


# ---------------------------------------------------------------- tiny pipelines, saved and loaded offline
@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """family -> saved tiny pipeline directory (built once per session)."""
    from benchmark.tiny import make_tiny

    root = tmp_path_factory.mktemp("tiny")
    made: dict[str, object] = {}

    def get(family: str):
        if family not in made:
            made[family] = make_tiny(family, root / family)
        return made[family]

    return get


@pytest.fixture(scope="session")
def adapters(tiny_dirs):
    """family -> DiffusionAdapter loaded from the saved directory with HF_HUB_OFFLINE=1 (shared)."""
    from benchmark.adapters import DiffusionAdapter, resolve_checkpoint
    from benchmark.generate import settings_for

    loaded: dict[str, DiffusionAdapter] = {}

    def get(family: str) -> DiffusionAdapter:
        if family not in loaded:
            mp = pytest.MonkeyPatch()
            mp.setenv("HF_HUB_OFFLINE", "1")
            try:
                directory = tiny_dirs(family)
                loaded[family] = DiffusionAdapter.load(str(directory), settings_for(resolve_checkpoint(str(directory))))
            finally:
                mp.undo()
        return loaded[family]

    return get


