"""Linear regression on the window, solved exactly by least squares."""

from __future__ import annotations

import numpy as np

from seqcast.data.windows import make_windows, sliding_windows
from seqcast.errors import DataError
from seqcast.forecasters.base import Forecaster

__all__ = ["LinearRegression"]


class LinearRegression(Forecaster):
    """ŷ[t+1 .. t+T] = W · [vec(x[t−L+1 .. t]), vec(k[t+1 .. t+T])] + b, fitted by least
    squares on every training window.

    The course trains this model (a single dense layer) with SGD; least squares reaches the
    minimum that SGD approaches. All input channels of the window are regressors, and so are
    the values at the forecast steps of the channels known ahead (``n_future``); each target
    and step of the horizon has its own weights (direct multi-output).
    """

    name = "linear"
    any_horizon = False
    reads_known = True

    @property
    def context_length(self) -> int:
        return self.window

    def _fit(self, series: list[np.ndarray]) -> None:
        inputs, targets = [], []
        known = self.n_known
        for values in series:
            windows = make_windows(values, self.window, self.horizon, n_targets=self.n_targets_)
            # A series shorter than window + horizon gives no windows (B = 0), and no error.
            # (B, L, F) -> (B, L·F), then (B, T, F_k) -> (B, T·F_k) of the known channels.
            rows = [windows.inputs.reshape(len(windows), self.window * values.shape[1])]
            if known:
                ahead = sliding_windows(values[self.window :, values.shape[1] - known :],
                                        self.horizon)[: len(windows)]  # fmt: skip
                rows.append(ahead.reshape(len(windows), self.horizon * known))
            inputs.append(np.hstack(rows))
            targets.append(windows.targets.reshape(len(windows), self.horizon * self.n_targets_))
        design = np.concatenate(inputs)
        if design.shape[0] < design.shape[1] + 1:
            needed = design.shape[1] + 1 + self.window + self.horizon - 1
            raise DataError(
                f"linear with window {self.window} has {design.shape[1] + 1} coefficients but "
                f"the training part gives only {design.shape[0]} windows; it needs at least "
                f"{needed} training points"
            )
        design = np.hstack([design, np.ones((design.shape[0], 1))])
        solution, *_ = np.linalg.lstsq(design, np.concatenate(targets), rcond=None)
        self.coef_ = solution  # (L*F + 1, T*Ft)

    def _predict(
        self, context: np.ndarray, horizon: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        flat = context.reshape(len(context), self.window * context.shape[2])  # (B, L·F)
        if future is not None:  # (B, T, F_k) -> (B, T*F_k)
            ahead = future[:, : self.horizon]  # (B, T, F_k) -> (B, T·F_k)
            flat = np.hstack([flat, ahead.reshape(len(future), self.horizon * ahead.shape[2])])
        out = flat @ self.coef_[:-1] + self.coef_[-1]  # (B, T*Ft)
        forecast: np.ndarray = out.reshape(context.shape[0], self.horizon, self.n_targets_)
        return forecast[:, :horizon]

    def get_state(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
