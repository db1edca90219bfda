"""The service under load: forecasts beyond the limit in flight get 503 with Retry-After at
once, and /health answers while forecasts run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_thread import running

from seqcast.data import load_dataset
from seqcast.errors import SeqcastError
from seqcast.forecasters.registry import create
from seqcast.persistence import save_model
from seqcast.serving import create_app
from seqcast.serving.models import ServedModel


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = load_dataset("sunspots")
    model = create("naive").fit([data.series[0].values], 1)
    return save_model(model, tmp_path / "naive", data)


def test_forecasts_beyond_the_limit_get_503_and_health_stays_fast(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered = threading.Event(), []
    original = ServedModel.forecast

    def slow(self: ServedModel, context: np.ndarray, horizon: int, *rest: Any) -> np.ndarray:
        entered.append(1)
        release.wait(10)
        return original(self, context, horizon, *rest)

    app = create_app([folder], max_in_flight=2)  # loading tries one forecast: not slowed
    monkeypatch.setattr(ServedModel, "forecast", slow)
    body = {"history": [1.0, 2.0, 3.0]}
    answers: list[Any] = []
    with running(app) as (url, _):

        def post() -> None:
            answers.append(httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30))

        workers = [threading.Thread(target=post) for _ in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while len(entered) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(entered) == 2, "two forecasts should be in flight"
        started = time.perf_counter()
        refused = httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "retry" in refused.json()["detail"]
        health = httpx.get(f"{url}/health", timeout=30)
        assert health.status_code == 200
        assert time.perf_counter() - started < 2.0  # neither waited for the forecasts in flight
        assert httpx.get(f"{url}/models", timeout=30).status_code == 200
        # A request refused as invalid is refused as such, without waiting for a slot.
        wide = {"history": [[1.0, 2.0], [3.0, 4.0]]}  # two columns for a one-column model
        invalid = httpx.post(f"{url}/models/naive/forecast", json=wide, timeout=30)
        assert invalid.status_code == 422, invalid.text
        assert "history rows have 2 values" in invalid.json()["detail"]
        release.set()
        for worker in workers:
            worker.join(10)
        assert [a.status_code for a in answers] == [200, 200]
        # The slots are free again.
        again = httpx.post(f"{url}/models/naive/forecast", json=body, timeout=30)
        assert again.status_code == 200


def test_the_limit_must_be_positive(folder: Path) -> None:
    with pytest.raises(SeqcastError, match="max_in_flight must be at least 1"):
        create_app([folder], max_in_flight=0)
