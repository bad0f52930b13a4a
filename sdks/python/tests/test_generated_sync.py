"""The sync clients are generated from the async ones (scripts/generate_sync.py): a hand edit to a
generated file, or an async edit without regenerating, fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_sync.py"


def test_generated_sync_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
