"""Fine-tuning an encoder on a user's own labels, scored by nested cross-validation, and prediction for
new subjects (docs/finetune.md).

- :func:`finetune`: outer folds identical to ``evaluate tasks``' (paired with linear probes), an inner
  validation split for early stopping and the learning rate, exact resume per fold, ``final=True`` for
  one model on every labelled subject;
- :func:`predict`: a fine-tuned model applied to new subjects;
- :func:`compare`: fine-tunes against linear probes on the same folds, with paired corrected tests.
"""

from anatlearn.finetune.compare import compare, probe_on_splits
from anatlearn.finetune.config import FinetuneConfig
from anatlearn.finetune.loop import LeakError
from anatlearn.finetune.predict import load_finetuned, predict
from anatlearn.finetune.run import finetune, read_run

__all__ = ["FinetuneConfig", "LeakError", "compare", "finetune", "load_finetuned", "predict", "probe_on_splits",
           "read_run"]
