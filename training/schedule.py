"""The learning-rate schedule: warm-up, then constant, cosine, step or plateau (optim.schedule)."""

from __future__ import annotations

import math

from handlatent.training.config import OptimConfig


class LRSchedule:
    """lr(step) = warm-up factor x schedule (optim.schedule), set on the optimizer each step.

    For `plateau` the schedule is a scale that `observe(val_loss)` multiplies by optim.factor
    when the loss has not improved by a relative optim.threshold for more than optim.patience
    validations (torch's ReduceLROnPlateau rule), never below optim.min_lr.
    """

    def __init__(self, cfg: OptimConfig, total_steps: int):
        self.cfg, self.total_steps = cfg, total_steps
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def lr(self, step: int) -> float:
        c = self.cfg
        warm = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "cosine":
            span = max(1, self.total_steps - c.warmup_steps)
            t = min(1.0, max(0.0, (step - c.warmup_steps) / span))
            lr = c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))
        elif c.schedule == "step":
            lr = max(c.min_lr, c.lr * c.factor ** (step // c.step_size))
        elif c.schedule == "plateau":
            lr = max(c.min_lr, c.lr * self.scale)
        else:
            lr = c.lr
        return lr * warm

    def observe(self, val_loss: float) -> None:
        if self.cfg.schedule != "plateau" or not math.isfinite(val_loss):
            return
        if val_loss < self.best - self.cfg.threshold * abs(self.best) or math.isinf(self.best):
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
            if self.bad > self.cfg.patience:
                self.scale, self.bad = self.scale * self.cfg.factor, 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]
