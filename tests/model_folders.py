"""Saved model folders in tests: a snapshot of a folder's files, and edits of a saved
``model.json`` that leave its checksums intact (the weights' and, signed again, its own: they
reach the checks behind them; the ``linear_folder`` fixture in conftest.py saves the folder
they are made to)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seqcast.persistence import description_checksum


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (nested ones too), by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def edit(folder: Path, change: str) -> None:
    config = json.loads((folder / "model.json").read_text())
    if change == "window":
        config["config"]["window"] = 7  # the stored context and weights hold 6 steps
    elif change == "columns":
        config["data"]["columns"] = []
    elif change == "freq":
        config["data"]["freq"] = "fortnightly"
    elif change == "no-series":
        config["data"]["series"] = []
    elif change == "last-time":
        config["data"]["series"][0]["last_time"] = "yesterday"
    write_signed(folder, config)


def write_signed(folder: Path, config: dict[str, Any]) -> None:
    """Writes ``config`` as the folder's ``model.json`` with its own checksum made again, as
    a forger who knows the format would."""
    config["description_sha256"] = description_checksum(config)
    (folder / "model.json").write_text(json.dumps(config))


CHANGES = ["window", "columns", "freq", "no-series", "last-time"]
