"""A rich progress bar for Keras training: one line that shows epoch, loss and validation loss.

Keras' own verbose output prints a line per epoch (or per step) and floods logs; this shows the
same information in place on a terminal and stays silent when ``enabled`` is False.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.detectors.backend import keras_module


def training_progress(description: str, epochs: int, enabled: bool = True) -> Any:
    """A ``keras.callbacks.Callback`` that drives a rich progress bar over the epochs."""
    keras = keras_module()

    class RichEpochs(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[losses]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=not enabled,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(description, total=epochs, losses="")

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            losses = " ".join(f"{k} {v:.3g}" for k, v in logs.items() if k.endswith("loss"))
            self.progress.update(self.task, completed=epoch + 1, losses=losses)

        def on_train_end(self, logs: dict | None = None) -> None:
            # Early stopping ends before `epochs`: close the bar where training actually stopped.
            self.progress.stop()

    return RichEpochs()
