"""``Encoder``: a frozen pretrained encoder as a scikit-learn transformer of images into features.

It runs :class:`anatlearn.embed.AnatEncoder`, the class behind ``anatlearn embed``, with the weights resolved by
:func:`anatlearn.models.load_pretrained` (anatlearn checkpoints, released AnatCL checkpoints, exported folders,
``hf-hub:`` names), so its features equal ``anatlearn embed``'s on the same images and options.

``transform`` applies ``embed``'s checks of the images against the encoder's training images, warning
(:class:`anatlearn.errors.InputWarning`) where the CLI refuses or flags: the grid rule
(:func:`anatlearn.data.lineage.check_grid`) and, with ``check_inputs``, the training-maps fingerprint check
(:mod:`anatlearn.inputcheck`). The outcomes are kept in ``grid_check_`` and ``input_check_``.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted

from anatlearn.errors import ConfigError, DataError, InputWarning, listed
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


def _warn(message: str) -> None:
    """An :class:`InputWarning` attributed to the user's line (the first caller outside anatlearn and
    scikit-learn, whose pipelines and set_output wrappers stand between it and ``transform``)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("anatlearn", "sklearn"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, InputWarning, stacklevel=level)


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
        first = self.items[0] if self.items else None  # the grid, as a NIfTI dataset's: the first image's
        self.shape = None if first is None else tuple(int(s) for s in first.shape[:3])
        self.affine = None if first is None else getattr(first, "affine", None)
        self._one_grid()

    def _one_grid(self) -> None:
        """Every image on the first one's grid (shape, and affine within 1e-3 mm as anatlearn.data.nifti
        requires), so that one grid check and one input check hold for them all."""
        def words(img) -> str:
            affine = getattr(img, "affine", None)
            origin = "" if affine is None else f", origin {np.round(affine[:3, 3], 2).tolist()} mm"
            return f"{'x'.join(str(int(n)) for n in img.shape[:3])}{origin}"

        for i, img in enumerate(self.items[1:], start=1):
            affine = getattr(img, "affine", None)
            if tuple(img.shape[:3]) != self.shape or (affine is None) != (self.affine is None) or (
                    affine is not None and not np.allclose(affine, self.affine, atol=1e-3)):
                raise DataError(f"image {self.files[i] or i} is on grid {words(img)}, image {self.files[0] or 0} on "
                                f"{words(self.items[0])}: give images of one grid (resampled to the training grid)")

    def __len__(self):
        return len(self.items)

    def volume(self, i: int) -> np.ndarray:
        img = self.items[i]
        shape = img.shape[:3] if (len(img.shape) == 4 and img.shape[3] == 1) else img.shape
        if len(shape) != 3:
            raise DataError(f"image {self.files[i] or i} is {len(img.shape)}-D {img.shape}; expected a 3-D volume")
        data = img.get_fdata(dtype=np.float32, caching="unchanged")  # read again when needed, not kept in memory
        return np.asarray(data).reshape(shape)  # as anatlearn.data.nifti reads it


class Encoder(TransformerMixin, BaseEstimator):
    """Images -> frozen-encoder features (the representation before the projection head).

    ``weights``: an anatlearn checkpoint, a released AnatCL checkpoint (``model``/``width`` name its
    architecture, default ResNet-18 at width 1), a ``.safetensors`` export, an exported folder or
    ``hf-hub:ORG/NAME``. ``device``: ``auto`` (the GPU if there is one), ``cpu``, ``cuda[:i]``;
    ``precision``: ``auto`` (fp32 on CPU, bf16/fp16 on GPU), ``fp32``, ``bf16``, ``fp16``; ``anatlearn embed``
    defaults to fp32, so on a GPU ``precision="fp32"`` gives its numbers.
    ``fit`` loads and checks the weights once (cloning does not load them); ``transform(X)`` takes a list of
    NIfTI paths or nibabel images, a (n, X, Y, Z) or (n, 1, X, Y, Z) array, or a dataset directory, and
    returns one row per image (a feature table indexed by participant_id with ``set_output(transform="pandas")``).

    Images on another grid than the training grid, and (``check_inputs=True``) maps unlike the training
    maps, give an :class:`~anatlearn.errors.InputWarning` (``anatlearn embed`` refuses the first and reports
    the second); the features are returned all the same. After ``transform``: ``grid_check_`` (the grid
    rule's record) and ``input_check_`` (one row per image: participant_id, ok, reasons, statistics; None
    when the check was not run or skipped); a pandas output carries both in ``attrs["metadata"]``.
    """

    def __init__(self, weights, model: str | None = None, width: float | None = None, batch_size: int = 8,
                 device: str = "auto", precision: str = "auto", check_inputs: bool = True):
        self.weights, self.model, self.width = weights, model, width
        self.batch_size, self.device, self.precision, self.check_inputs = batch_size, device, precision, check_inputs

    def fit(self, X=None, y=None) -> "Encoder":
        """Load and check the weights (the encoder is frozen: ``X`` and ``y`` are not used)."""
        import torch

        from anatlearn.embed import AnatEncoder
        from anatlearn.models import load_pretrained
        from anatlearn.precision import resolve

        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            try:
                device = torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"unknown `device` {self.device!r}; use auto, cpu or cuda[:i]") from None
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
            if not Path(X).is_dir():
                return _Images([X])
            from anatlearn.data import open_dataset

            return open_dataset(X, require_age=False)  # what AnatEncoder opens, opened once for the checks too
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

    def _check_grid(self, maps) -> dict:
        """The grid rule of ``anatlearn embed`` (:func:`anatlearn.data.lineage.check_grid`), warning where embed
        refuses; returns its record (``status``: same grid, training grid not recorded, or mismatch warned)."""
        from anatlearn.data.lineage import IDENTITY, check_grid, dataset_grid, grid_text

        want, have = self.encoder_.metadata[IDENTITY]["training_grid"], dataset_grid(maps)
        try:
            record = check_grid(want, have, model=str(self.weights), data="X")
        except DataError as err:  # embed's refusal, minus its CLI remedy: here the features are computed anyway
            problem = str(err).split(": bring the images")[0]
            _warn(f"{problem}; the features were computed anyway (`anatlearn embed` refuses such images): bring "
                  f"the images to the training grid (recorded in grid_check_)")
            record = {"training_grid": grid_text(want), "input_grid": grid_text(have), "allowed_mismatch": False,
                      "status": "mismatch warned"}
        return {**record, "input_shape": have["shape"]}

    def check_inputs_hook(self, maps):
        """The input check of ``anatlearn embed`` (:func:`anatlearn.inputcheck.run_check` against the training
        maps' fingerprint of the weights), run by :meth:`transform` when ``check_inputs`` is true; warns with
        embed's summary line and every flagged subject's reasons. Returns the check's Reference."""
        from anatlearn.inputcheck import reference_from_meta, run_check, summary_line

        meta = getattr(self.encoder_.model, "checkpoint_meta", {})
        ref = run_check(maps, reference_from_meta(meta, str(self.weights)))
        if ref.results is not None and not ref.results["ok"].all():
            bad = ref.results[~ref.results["ok"]]
            line = summary_line(ref, "the Encoder's input_check_ (one row per image) or `anatlearn check`")
            flagged = listed([f"subject {p}: {r}" for p, r in zip(bad["participant_id"], bad["reasons"])], 5, " | ")
            _warn(f"{line}. {flagged}")
        return ref

    def transform(self, X):
        """Features of every image, in the order given (rows: images; columns ``f0000...``), after the checks
        (class docstring)."""
        from anatlearn.data.lineage import GRID
        from anatlearn.inputcheck import InMemoryMaps, summary

        check_is_fitted(self)
        source = self._inputs(X)
        maps = source if hasattr(source, "volume") else InMemoryMaps(source)
        self.grid_check_ = self._check_grid(maps)
        ref = self.check_inputs_hook(maps) if self.check_inputs else None
        self.input_check_ = None if ref is None else ref.results
        # the grid is checked: AnatEncoder records this rather than checking (and warning) again, as for embed
        self.encoder_.metadata[GRID] = self.grid_check_
        table = self.encoder_.transform(source)
        if _get_output_config("transform", self)["dense"] == "pandas":
            if ref is not None:
                table.attrs["metadata"]["input_check"] = summary(ref, "the Encoder's input_check_")
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
