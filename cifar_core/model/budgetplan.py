"""How many training steps fit a run's time budget: pure arithmetic on measured times (the engine's FitToBudget
feeds it the clock), so that a run ends between 92% and 100% of its budget, launch to last file.

The plan is a number of steps, not of epochs: the last epoch is cut where the time runs out (at the end of a
chunk of batches, where Keras can stop), and the one-cycle schedule is fitted to those steps, so it reaches zero
as the run ends. It is re-planned after every epoch from a robust speed (the median of the recent epochs, the first
one left out once there are three others: it carries the tracing), so one slow epoch (another program on the machine)
neither stretches the plan past the budget (its lost time is on the clock) nor shrinks it for the epochs after.
Near the end, the plan shrinks within an epoch that runs slower than planned.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

MARGIN = 0.04  # the plan aims at 96% of the budget: the end lands within 92-100% with a few % of error either way
INFERENCE_SHARE = 1 / 3  # an image predicted costs about a third of one trained (until a validation pass measured it)
FINISH_S = 2.2  # after training, besides the final evaluation's passes: its graph traced anew (embeddings.record's
# feature model), best weights loaded, batch-norm check, model.keras saved, reports (2.2 s measured for fast-w0.5 on
# 2 idle cores, 2026-12-01; 1.9 to 6.7 s with a load average of 7 to 10 before the evaluation wrote embeddings):
# scaled by the square root of the load per core (BudgetPlanner.busy), a middle way between those
RECENT_EPOCHS = 3  # the speed is the median over this many of the latest epochs


@dataclass
class BudgetPlanner:
    """The plan of one budgeted run: `end` is the clock time its last file should be written by (the budget less
    MARGIN); `chunk` the batches per execution (training stops only at their ends, counted from each epoch's
    start); `test_passes` 2 with test-time flips."""

    launched: float
    budget_s: float
    steps_per_epoch: int
    batch_size: int
    validation_images: int
    test_images: int
    test_passes: int = 1
    chunk: int = 1
    finish_s: float = FINISH_S
    busy: float = 1.0  # how many times slower than alone the work after training will run (load average / cores)
    step_seconds: list[float] = field(default_factory=list)  # per epoch: training seconds per step
    image_seconds: list[float] = field(default_factory=list)  # per epoch: validation seconds per image
    between_s: list[float] = field(default_factory=list)  # per epoch: from its last batch to the next one's start
    between_calls: int = 0
    first_validation_s: float | None = None  # the first epoch's validation pass (it traces the prediction graph)
    other_s: float = 0.0  # the first epoch's cost beyond its validation pass (records, backup), until between_s
    first_step_s: float | None = None  # from the first batches, until an epoch has been measured
    trace_s: float = 0.0  # the first call's tracing of the training graph (calibrate): what the first validation pass,
    # which traces the prediction graph, is taken to add until it has run

    @property
    def end(self) -> float:
        return self.launched + self.budget_s * (1 - MARGIN)

    def step_s(self) -> float:
        """Seconds per training step: the median over the recent epochs (the first left out when others exist),
        else the first batches' speed."""
        if not self.step_seconds:
            return self.first_step_s or 1.0
        return robust(self.step_seconds)

    def predict_s(self) -> float:
        """Seconds to predict one image: measured by the validation passes, else INFERENCE_SHARE of a training
        image."""
        if self.image_seconds:
            return robust(self.image_seconds)
        return self.step_s() / self.batch_size * INFERENCE_SHARE

    def calibrate(self, seconds_per_step: float, trace_s: float = 0.0) -> None:
        """The first estimate, from the first batches (before any epoch ended), and the seconds the first call
        spent tracing (on an AVX2-only CPU in float32, about 4.5 s for fast-w0.25, whose first validation pass then
        took about 3.6 s more than its images: a 60 s run that counted neither ended at 110% of its budget)."""
        self.first_step_s = seconds_per_step
        self.trace_s = max(trace_s, 0.0)

    def epoch_done(self, train_s: float, steps: int, validation_s: float | None) -> None:
        """An epoch's measured times: `train_s` for `steps` steps, `validation_s` for its validation pass (not
        the first epoch's, which traces the prediction graph: 10 s against 2 on a busy machine)."""
        self.step_seconds.append(train_s / max(steps, 1))
        if validation_s and self.validation_images and len(self.step_seconds) > 1:
            self.image_seconds.append(validation_s / self.validation_images)
        elif len(self.step_seconds) == 1:
            self.first_validation_s = validation_s or 0.0

    def between_epochs(self, seconds: float) -> None:
        """What one epoch cost beyond its steps: from its last batch to the next epoch's start (its validation pass,
        metrics, best weights, layer records, backup); the first epoch's is left out (it traces the graphs)."""
        if self.between_calls:
            self.between_s.append(seconds)
        elif self.first_validation_s is not None:
            self.other_s = max(seconds - self.first_validation_s, 0.0)
        self.between_calls += 1

    def epoch_cost_s(self) -> float:
        """Seconds each epoch costs beyond its steps: as measured, else its validation pass and the first epoch's
        other costs (a 60 s run has only two or three epochs: 0.26 s of records and backup went uncounted)."""
        if self.between_s:
            return robust(self.between_s)
        return self.predict_s() * self.validation_images + self.other_s

    def total_steps(self, now: float, steps_done: int, step_s: float | None = None) -> int:
        """The steps (from the run's start, at least `steps_done`) whose training, the work after each epoch
        (validation, records), the test evaluation and finishing end nearest `end`, at the robust speed: the most
        that end by it, or one chunk more where that ends nearer it and still by 98% of the budget (a short budget's
        chunk is a few % of it: always rounding down left 60 s runs ending at 91%). `step_s`: another speed."""
        step_s = step_s or self.step_s()
        steps = self._fit(now, steps_done, step_s, self.end)
        more = min(steps + self.chunk, (steps // self.steps_per_epoch + 1) * self.steps_per_epoch)
        end_more = self._end(now, steps_done, more, step_s)
        if end_more <= self._limit() and end_more - self.end < self.end - self._end(now, steps_done, steps, step_s):
            return more
        return steps

    def adjust(self, now: float, steps_done: int, planned: int, pace_s: float) -> int:
        """Within an epoch, at its own pace `pace_s`: the plan shrunk if it would overrun, else grown if it would
        end early, else as it is."""
        shrunk = self.shrink(now, steps_done, planned, pace_s)
        return shrunk if shrunk != planned else self.grow(now, steps_done, planned, pace_s)

    def shrink(self, now: float, steps_done: int, planned: int, pace_s: float) -> int:
        """Within an epoch: the planned steps, fewer when at `pace_s` (seconds per step of this epoch so far) they and
        the work after them would end past 98% of the budget and what fits then ends within this epoch or the next
        (a slow epoch further from the end is re-planned for at its end, from the robust speed: the schedule is not
        shrunk for a passing slowness)."""
        limit = self._limit()
        if self._end(now, steps_done, planned, pace_s) <= limit:
            return planned
        fits = self._fit(now, steps_done, pace_s, limit)
        return min(planned, fits) if self._near(steps_done, fits) else planned  # far from the end: re-planned there

    def grow(self, now: float, steps_done: int, planned: int, pace_s: float) -> int:
        """Within an epoch: the planned steps, more when at `pace_s` (seconds per step of this epoch so far, when
        faster than the plan's) they and the work after them would end before 94% of the budget and what fits then
        ends within this epoch or the next. A 60 s run plans its last epoch from its first, which ran 10-17% slower
        than its second (2026-12-01, fast-w0.5): it ended at 91-94% of its budget."""
        early = self.launched + self.budget_s * (1 - MARGIN * 3 / 2)
        if pace_s >= self.step_s() or self._end(now, steps_done, planned, pace_s) >= early:
            return planned
        fits = self.total_steps(now, steps_done, pace_s)
        return max(planned, fits) if self._near(steps_done, fits) else planned

    def _near(self, steps_done: int, steps: int) -> bool:
        """Whether a plan of `steps` ends within this epoch or the next."""
        return steps <= (steps_done // self.steps_per_epoch + 2) * self.steps_per_epoch

    def _limit(self) -> float:
        """The latest a plan may end: 98% of the budget."""
        return self.launched + self.budget_s * (1 - MARGIN / 2)

    def _after_training_s(self) -> float:
        """The final evaluation (test and validation images, each pass: embeddings.record) and finishing."""
        images = (self.test_images + self.validation_images) * self.test_passes
        return self.predict_s() * images + self.finish_s * self.busy

    def _pending_trace_s(self) -> float:
        """The first validation pass's tracing, counted until an epoch (and so that pass) has been measured."""
        return 0.0 if self.step_seconds else self.trace_s

    def _end(self, now: float, steps_done: int, planned: int, step_s: float) -> float:
        """When a run at `step_s` a step that has done `steps_done` of `planned` steps writes its last file."""
        epoch_ends = -(-planned // self.steps_per_epoch) - steps_done // self.steps_per_epoch
        tracing = self._pending_trace_s() if epoch_ends else 0.0
        return (now + (planned - steps_done) * step_s + epoch_ends * self.epoch_cost_s() + tracing
                + self._after_training_s())

    def _fit(self, now: float, steps_done: int, step_s: float, end: float) -> int:
        """The most steps (at least `steps_done`, at least 1) that end by `end` at `step_s` a step; an epoch that is
        cut ends at a chunk's end (counted from the epoch's start)."""
        left = end - now - self._after_training_s() - self._pending_trace_s()  # a plan always ends an epoch
        per_epoch = self.epoch_cost_s()
        spe = self.steps_per_epoch
        epochs_done = steps_done // spe
        best = steps_done
        for epochs in range(epochs_done + 1, epochs_done + 2 + int(max(left, 0) / max(step_s * spe, 1e-9))):
            room = left - (epochs - epochs_done) * per_epoch
            steps = min(epochs * spe, steps_done + int(room / step_s)) if room > 0 else steps_done
            last_epoch_steps = steps - (epochs - 1) * spe
            if last_epoch_steps <= 0:
                break
            if last_epoch_steps < spe:  # a cut epoch ends at a chunk's end
                steps = (epochs - 1) * spe + last_epoch_steps // self.chunk * self.chunk
                if steps <= max((epochs - 1) * spe, steps_done - 1):
                    break
            best = max(best, steps)
        return max(best, 1)


def robust(per_epoch: list[float]) -> float:
    """The median of the latest RECENT_EPOCHS values, the first epoch's (which carries the tracing) left out once
    RECENT_EPOCHS others can outvote one slow epoch."""
    values = per_epoch[1:] if len(per_epoch) > RECENT_EPOCHS else per_epoch
    return statistics.median(values[-RECENT_EPOCHS:])


def steady_speed(lines: list[dict]) -> float | None:
    """A run's training images/s from its metrics lines: the median over its epochs after the first (which carries
    the tracing); None with one epoch."""
    rates = [m["images_per_s"] for m in lines[1:] if m.get("images_per_s")]
    return statistics.median(rates) if rates else None
