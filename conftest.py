# Loads the SinkBench plugin when running from a checkout. When the package is installed, the same
# plugin is already registered under this name (pytest11 entry point) and is not loaded twice.
pytest_plugins = ["benchmark.plugin"]
