"""``Encoder``: a frozen pretrained encoder as a scikit-learn transformer of images into features.

It runs :class:`anatlearn.embed.AnatEncoder`, the class behind ``anatlearn embed``, with the weights resolved by
:func:`anatlearn.models.load_pretrained` (anatlearn checkpoints, released AnatCL checkpoints, exported folders,
``hf-hub:`` names), so its features equal ``anatlearn embed``'s on the same images and options.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted

from anatlearn.errors import ConfigError, DataError
from anatlearn.features import feature_columns

NIFTI_SUFFIX = re.compile(r"\.nii(\.gz)?$")


def participant_id(path, position: int) -> str:
    """The subject of an image file: the BIDS ``sub-<label>`` of its name, else its name without .nii[.gz]
    (``position`` when it has neither, e.g. an image built in memory)."""
    if path is None:
        return str(position)
    name = NIFTI_SUFFIX.sub("", Path(str(path)).name)
    match = re.match(r"sub-([A-Za-z0-9]+)", name)
    return match.group(1) if match else name


class _Images:
    """A list of NIfTI paths and/or nibabel images read one at a time, as a dataset (``volume(i)``, ``participants``)."""

    def __init__(self, items):
        import nibabel as nib

        self.items = [nib.load(str(x)) if isinstance(x, (str, os.PathLike)) else x for x in items]
        bad = [i for i, x in enumerate(self.items) if not hasattr(x, "get_fdata")]
        if bad:
            raise DataError(f"X[{bad[0]}] is a {type(items[bad[0]]).__name__}: give NIfTI paths, nibabel images, "
                            f"a 4-D/5-D array or a dataset directory")
        files = [x if isinstance(x, (str, os.PathLike)) else getattr(img, "get_filename", lambda: None)()
                 for x, img in zip(items, self.items)]
        self.files = files
        ids = [participant_id(f, i) for i, f in enumerate(files)]
        if len(set(ids)) < len(ids):  # several images of one subject, or no subject in the names: positions
            ids = [str(i) for i in range(len(ids))]
        self.participants = pd.DataFrame({"participant_id": ids})

    def __len__(self):
        return len(self.items)

    def volume(self, i: int) -> np.ndarray:
        img = self.items[i]
        shape = img.shape[:3] if (len(img.shape) == 4 and img.shape[3] == 1) else img.shape
        if len(shape) != 3:
            raise DataError(f"image {self.files[i] or i} is {len(img.shape)}-D {img.shape}; expected a 3-D volume")
        return np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)  # as anatlearn.data.nifti reads it


class Encoder(TransformerMixin, BaseEstimator):
    """Images -> frozen-encoder features (the representation before the projection head).

    ``weights``: an anatlearn checkpoint, a released AnatCL checkpoint (``model``/``width`` name its
    architecture, default ResNet-18 at width 1), a ``.safetensors`` export, an exported folder or
    ``hf-hub:ORG/NAME``. ``device``: ``auto`` (the GPU if there is one), ``cpu``, ``cuda[:i]``;
    ``precision``: ``auto`` (fp32 on CPU, bf16/fp16 on GPU), ``fp32``, ``bf16``, ``fp16``.
    ``fit`` loads and checks the weights once (cloning does not load them); ``transform(X)`` takes a list of
    NIfTI paths or nibabel images, a (n, X, Y, Z) or (n, 1, X, Y, Z) array, or a dataset directory, and
    returns one row per image (a feature table indexed by participant_id with ``set_output(transform="pandas")``).
    """

    def __init__(self, weights, model: str | None = None, width: float | None = None, batch_size: int = 8,
                 device: str = "auto", precision: str = "auto", check_inputs: bool = True):
        self.weights, self.model, self.width = weights, model, width
        self.batch_size, self.device, self.precision, self.check_inputs = batch_size, device, precision, check_inputs

    def fit(self, X=None, y=None) -> "Encoder":
        """Load and check the weights (the encoder is frozen: ``X`` and ``y`` are not used)."""
        import torch

        from anatlearn.embed import AnatEncoder
        from anatlearn.precision import resolve

        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            try:
                device = torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"unknown `device` {self.device!r}; use auto, cpu or cuda[:i]") from None
        from anatlearn.models import load_pretrained

        dtype, _ = resolve(self.precision, device, name="precision")
        net = load_pretrained(self.weights, model=self.model, width=self.width)  # a contradicting model= is an error
        encoder = AnatEncoder(net, batch_size=self.batch_size, device=str(device), dtype=dtype or torch.float32)
        encoder.source = str(self.weights)
        encoder.metadata = encoder._metadata()  # provenance names the weights, as `anatlearn embed`'s does
        self.encoder_ = encoder
        self.n_features_out_ = self.encoder_.n_features
        return self

    def _inputs(self, X):
        """What AnatEncoder reads: a dataset (directory), an image list, or an array of volumes."""
        if isinstance(X, (str, os.PathLike)):
            return X if Path(X).is_dir() else _Images([X])
        if isinstance(X, np.ndarray):
            if X.ndim not in (4, 5):
                raise DataError(f"X: an array of volumes must be (n, X, Y, Z) or (n, 1, X, Y, Z), got {X.shape}")
            return X
        if hasattr(X, "volume") and hasattr(X, "participants"):
            return X
        if isinstance(X, (list, tuple, pd.Series)):
            items = list(X)
            if items and all(isinstance(x, np.ndarray) for x in items):
                return np.stack(items)
            return _Images(items)
        raise DataError(f"X is a {type(X).__name__}: give NIfTI paths, nibabel images, a 4-D/5-D array or a "
                        f"dataset directory")

    def check_inputs_hook(self, source) -> None:
        """Checks of the images against what the encoder was trained on, run by :meth:`transform` when
        ``check_inputs`` is true. Today: every volume 3-D, finite and of one shape (AnatEncoder refuses
        the rest, naming the subject); the place for the training-maps check of ``anatlearn embed``."""

    def transform(self, X):
        """Features of every image, in the order given (rows: images; columns ``f0000...``)."""
        check_is_fitted(self)
        source = self._inputs(X)
        if self.check_inputs:
            self.check_inputs_hook(source)
        table = self.encoder_.transform(source)
        if _get_output_config("transform", self)["dense"] == "pandas":
            return table
        return table.to_numpy()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(feature_columns(self.n_features_out_), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = False
        return tags
