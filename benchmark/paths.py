"""Where SinkBench's own files live. SinkBench runs from its checkout (editable install)."""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SPECS_DIR = PACKAGE_DIR / "specs"
SCHEMAS_DIR = PACKAGE_DIR / "schemas"
CARDS_DIR = REPO_ROOT / "models" / "cards"
DEFAULT_REPORT_DIR = REPO_ROOT / "reports"
