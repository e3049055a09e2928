"""``Pretrainer``: ``anatlearn pretrain`` as an estimator; ``fit(dataset_dir)`` trains (resuming a stopped run
in ``out``), ``transform`` embeds with the trained encoder (:class:`~anatlearn.estimators.encoder.Encoder`)."""

from __future__ import annotations

from pathlib import Path

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from anatlearn.errors import ConfigError
from anatlearn.estimators.encoder import Encoder


class Pretrainer(TransformerMixin, BaseEstimator):
    """Pretrain an encoder with ``method`` (any of ``anatlearn pretrain --method``) on a dataset directory.

    ``out`` is the run directory (required: checkpoints, config and metrics go there, as with the command);
    a run already in ``out`` is resumed (a complete one is not retrained), so a killed ``fit`` continues where
    it stopped. ``fit(X)`` takes the dataset directory (``X``; ``y`` is not used: ages and anatomy come from
    the dataset). Fitted: ``run_dir_``, ``weights_`` (the last checkpoint) and ``encoder_`` (a fitted Encoder).
    """

    def __init__(self, method: str = "anatcl-global", epochs: int = 50, out=None, width: float = 1.0,
                 batch_size: int = 32, seed: int = 0, device: str = "auto", num_workers: int = 2):
        self.method, self.epochs, self.out, self.width = method, epochs, out, width
        self.batch_size, self.seed, self.device, self.num_workers = batch_size, seed, device, num_workers

    def fit(self, X, y=None) -> "Pretrainer":
        from anatlearn.pretrain import TrainConfig, pretrain

        if self.out is None:
            raise ConfigError("Pretrainer needs `out`, the run directory (checkpoints; a stopped run resumes there)")
        if not Path(str(X)).is_dir():
            raise ConfigError(f"Pretrainer.fit takes a dataset directory, got {X!r}")
        cfg = TrainConfig(data=str(X), out=str(self.out), method=self.method, epochs=self.epochs, width=self.width,
                          batch_size=self.batch_size, seed=self.seed, num_workers=self.num_workers)
        resume = (Path(self.out) / "checkpoints" / "last.pt").exists()
        self.run_dir_ = pretrain(cfg, resume=resume)
        self.weights_ = Path(self.run_dir_) / "checkpoints" / "last.pt"
        self.encoder_ = Encoder(self.weights_, device=self.device).fit()
        return self

    def transform(self, X):
        """Features of ``X`` (anything :class:`Encoder` takes) from the trained encoder."""
        check_is_fitted(self)
        return self.encoder_.set_output(transform=_output(self)).transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self)
        return self.encoder_.get_feature_names_out()


def _output(estimator) -> str:
    from sklearn.utils._set_output import _get_output_config

    return _get_output_config("transform", estimator)["dense"]
