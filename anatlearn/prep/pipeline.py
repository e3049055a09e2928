"""Per-subject preparation of a T1w image into the released weights' input space, on ANTsPy (``antspyx``).

Steps (each optional step is a :class:`PrepConfig` field):

0. **Skull stripping** (``skull_strip``, :mod:`anatlearn.prep.skullstrip`): deepbet's brain mask, applied
   when the image has a skull (``auto``) or always (``yes``).
1. **N4 bias-field correction** (Tustison et al. 2010, IEEE TMI 29:1310) of the native image, inside the
   extracted mask (or the head's foreground); an extracted brain is then cut to its parenchymal outline
   (:func:`~anatlearn.prep.skullstrip.brain_outline`), so that from here on a skull-on input follows the
   path of a skull-stripped one and both present the same outline to registration and segmentation.
2. **Registration** to the bundled MNI152 2009a template (:mod:`anatlearn.prep.templates`) with
   ``ants.registration``: affine (centre-of-mass start, Mattes mutual information) for ``quasiraw``;
   affine followed by symmetric diffeomorphic normalisation, SyN (Avants et al. 2008, Med Image Anal
   12:26), for ``vbm``. The metric is restricted to the template's dilated brain mask.
3. **Brain mask** in native space: the template's mask pulled back through the inverse transforms.
4. **Tissue segmentation** (``vbm``): three-class Atropos (Avants et al. 2011, Neuroinformatics 9:381) with
   the template's CSF / GM / WM probability maps as spatial priors, inside the native brain mask, on the
   N4-corrected image smoothed inside the brain by ``segmentation_smoothing`` mm
   (:func:`~anatlearn.prep.filters.smooth_inside`), so that the GM volume does not follow how sharply the
   head happened to be sampled.
5. **Jacobian modulation** (Ashburner & Friston 2000, NeuroImage 11:805): the GM probability is warped to
   the template and multiplied by the determinant of the Jacobian of the template-to-native mapping
   (affine part times the SyN field's), so that the map integrates to the subject's native GM volume
   ("modulated GM", CAT12's ``mwp1``). ``quasiraw`` is the bias-corrected, brain-masked T1w after the affine.
6. **Resampling** onto the target grid (OpenBHB, Dufumier et al. 2022: 121x145x121 at 1.5 mm for VBM,
   182x218x182 at 1 mm for quasi-raw).

This approximates CAT12's VBM pipeline; it is not CAT12 (see docs/prep.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import nibabel as nib
import numpy as np

from anatlearn.errors import ConfigError, DataError
from anatlearn.prep import SEGMENTATION_SMOOTHING_MM
from anatlearn.prep.filters import antialias, foreground_mask, smooth_inside
from anatlearn.prep.qc import FLAG_CORR_GM, FLAG_CORR_TEMPLATE, FLAG_DICE_BRAIN
from anatlearn.prep.skullstrip import brain_outline, check_choice, extract_brain
from anatlearn.prep.templates import Grid, load_template, target_grid, template_on_grid

REGISTRATIONS = {"none": None, "rigid": "Rigid", "affine": "Affine", "syn": "SyN"}
MODULATIONS = ("full", "nonlinear", "none")
# what a prep run made before an option existed used (prep.json without the key), so a resume can tell
LEGACY_RESULT_FIELDS = {"segmentation_smoothing": 0.0}


@dataclass
class PrepConfig:
    """Options of ``anatlearn prep``. ``registration="auto"`` is affine for quasiraw and SyN for vbm;
    ``target_voxel_mm`` replaces the target grid by a coarser one over the same box (tests);
    ``skull_strip`` is auto | yes | no (:mod:`anatlearn.prep.skullstrip`);
    ``min_correlation`` / ``min_dice`` are the QC gates below which a subject is reported as failed (no
    output); ``flag_*`` are the QC thresholds below which a prepared subject is ``flagged``
    (:mod:`anatlearn.prep.qc`, docs/prep.md); ``threads`` is ITK's (and deepbet's) thread count per
    subject, one by default so that reruns are bit-identical (``jobs`` runs subjects in parallel instead)."""

    target: str = "vbm"
    skull_strip: str = "auto"
    n4: bool = True
    registration: str = "auto"
    template_resolution: float = 1.0
    target_voxel_mm: float | None = None
    syn_iterations: tuple[int, ...] = (40, 20, 0)
    atropos_iterations: int = 5
    prior_weight: float = 0.25
    segmentation_smoothing: float = SEGMENTATION_SMOOTHING_MM
    modulation: str = "full"
    min_correlation: float = 0.5
    min_dice: float = 0.0
    flag_dice_brain: float = FLAG_DICE_BRAIN
    flag_corr_template: float = FLAG_CORR_TEMPLATE
    flag_corr_gm: float = FLAG_CORR_GM
    write_nifti: bool = True
    qc_figures: bool = True
    jobs: int = 1
    threads: int | None = None
    seed: int = 0

    def __post_init__(self):
        self.syn_iterations = tuple(int(i) for i in self.syn_iterations)
        if self.target not in ("vbm", "quasiraw"):
            raise ConfigError(f"unknown `target` {self.target!r}; choose vbm or quasiraw")
        if self.registration != "auto" and self.registration not in REGISTRATIONS:
            raise ConfigError(f"unknown --registration {self.registration!r}; choose auto, {', '.join(REGISTRATIONS)}")
        if self.modulation not in MODULATIONS:
            raise ConfigError(f"unknown --modulation {self.modulation!r}; choose {', '.join(MODULATIONS)}")
        if self.template_resolution <= 0 or (self.target_voxel_mm is not None and self.target_voxel_mm <= 0):
            raise ConfigError("--template-resolution and --target-voxel-mm must be positive")
        if self.jobs < 1 or (self.threads is not None and self.threads < 1):
            raise ConfigError("--jobs and --threads must be at least 1")
        check_choice(self.skull_strip)
        if not self.segmentation_smoothing >= 0:
            raise ConfigError(f"--segmentation-smoothing must be at least 0 mm, got {self.segmentation_smoothing}")
        if self.atropos_iterations < 1:
            raise ConfigError("--atropos-iterations must be at least 1")
        ants_seed(self.seed)  # validates it (>= 0)

    @property
    def transform(self) -> str:
        if self.registration == "auto":
            return "affine" if self.target == "quasiraw" else "syn"
        return self.registration

    @property
    def grid(self) -> Grid:
        return target_grid(self.target, self.target_voxel_mm)

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    RUNTIME_ONLY = ("jobs", "threads", "qc_figures", "min_correlation", "min_dice", "flag_dice_brain",
                    "flag_corr_template", "flag_corr_gm")

    def result_fields(self) -> dict:
        """The options that change the prepared volumes (a resumed run must use the same)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_ONLY}

    @classmethod
    def from_dict(cls, d: dict) -> "PrepConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm", "sec")
    return img


def _to_ants(img: nib.Nifti1Image):
    import ants

    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


def _grid_reference(grid: Grid):
    return _to_ants(_nifti(np.zeros(grid.shape, np.float32), grid.matrix))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    denom = int(a.sum()) + int(b.sum())
    return float(2.0 * np.logical_and(a, b).sum() / denom) if denom else 0.0


def masked_correlation(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    m = mask > 0.5
    a, b = x[m].astype(np.float64), y[m].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class SubjectResult:
    """What :func:`prepare_subject` produced: the volume on the target grid and QC metrics."""

    volume: np.ndarray
    dice_brain: float
    dice_tissue: float
    corr_template: float
    jacobian_mean: float
    warped_t1: np.ndarray
    native_gm_ml: float = float("nan")
    corr_gm: float = float("nan")
    skull_strip: str = "no"
    outside_brain: float = float("nan")
    strip_seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)  # skull strip, bias correction, registration, segmentation


def _affine_det(path: str) -> float:
    import ants

    tx = ants.read_transform(path)
    return float(np.linalg.det(np.asarray(tx.parameters[:9], dtype=float).reshape(3, 3)))


def prepare_subject(img: nib.Nifti1Image, config: PrepConfig, log: logging.Logger | None = None) -> SubjectResult:
    """Run the pipeline on one validated 3-D image (see the module docstring). Bit-identical reruns for a
    given ``config.seed`` with one ITK thread, the default (``config.threads`` None or 1; ITK reads its
    thread count once per process, so it is set here only if the process has not set it already)."""
    import ants

    log = log or logging.getLogger("anatlearn.prep")
    # passed to antsRegistration as --random-seed; ANTs reads 0 as "seed from the clock" (its help: "any
    # nonzero int value"), so the user's seed is shifted by one: --seed 0 is a fixed seed too
    ants.config._random_seed = ants_seed(config.seed)
    tpl = load_template(config.template_resolution)
    grid = config.grid
    ref = _grid_reference(grid)
    on_grid = template_on_grid(grid)
    fixed = tpl.ants("t1")
    t0 = time.perf_counter()

    native = _to_ants(img)
    arr = native.numpy()
    if "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS" not in os.environ:  # a library call: the deterministic default
        configure_threads(config.threads)
    threads = int(os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"])
    strip = extract_brain(img, config.skull_strip, threads)
    if strip.applied:
        arr = arr * strip.mask
    log.info("skull stripping: %s (%.1f s)", strip.decision, strip.seconds)
    stages = {"skull strip": round(strip.seconds, 2)}
    t_n4 = time.perf_counter()
    native = native.new_image_like(np.clip(arr, 0, None) / max(float(np.percentile(arr, 99.9)), 1e-6))
    if config.n4:
        support = native.new_image_like(strip.mask) if strip.applied else foreground_mask(native)
        native = ants.n4_bias_field_correction(native, mask=support)
        log.info("N4 bias-field correction done (%.1f s)", time.perf_counter() - t0)
        stages["bias correction"] = round(time.perf_counter() - t_n4, 2)
    if strip.applied:
        # an extractor's mask keeps a shell of extra-cerebral CSF that a stripped input from another tool may
        # lack; cut to the parenchyma's outline, both kinds of input reach registration and segmentation alike
        outline = brain_outline(native.numpy(), strip.mask, native.spacing)
        native = native.new_image_like(native.numpy() * outline)
        voxel_ml = float(np.prod(native.spacing)) / 1000.0
        log.info("brain outline: %.0f of the extracted %.0f ml", outline.sum() * voxel_ml, strip.mask.sum() * voxel_ml)

    with tempfile.TemporaryDirectory(prefix="anatlearn-prep-") as tmp, _temp_files_in(tmp):
        kind = config.transform
        if kind == "none":
            fwd, inv, inv_flags = [], [], []
            log.info("registration: none (image assumed already in MNI space)")
        else:
            from scipy import ndimage

            dil = max(1, int(round(5.0 / config.template_resolution)))
            reg_mask = tpl.ants("mask").new_image_like(
                ndimage.binary_dilation(tpl.ants("mask").numpy() > 0.5, iterations=dil).astype(np.float32))
            kwargs = {"reg_iterations": config.syn_iterations} if kind == "syn" else {}
            t1 = time.perf_counter()
            try:
                reg = ants.registration(fixed, native, type_of_transform=REGISTRATIONS[kind], mask=reg_mask,
                                        outprefix=str(Path(tmp) / "reg_"), **kwargs)
            except Exception as exc:  # ANTs raises RuntimeError with its own message
                raise DataError(f"registration failed: {exc}") from None
            fwd, inv = reg["fwdtransforms"], reg["invtransforms"]
            inv_flags = [True, False] if kind == "syn" else [True]
            log.info("registration %s done (%.1f s)", kind, time.perf_counter() - t1)
            stages["registration"] = round(time.perf_counter() - t1, 2)

        grid_mm = float(abs(np.linalg.det(np.asarray(grid.affine, float)[:3, :3]))) ** (1 / 3)

        def to_grid(moving, interp="linear"):
            if not fwd:
                return ants.resample_image_to_target(moving, ref, interp_type=interp).numpy()
            return ants.apply_transforms(ref, moving, fwd, interpolator=interp).numpy()

        def to_native(key):
            moving = tpl.ants(key)
            if not inv:
                return ants.resample_image_to_target(moving, native, interp_type="linear")
            return ants.apply_transforms(native, moving, inv, interpolator="linear", whichtoinvert=inv_flags)

        warped_t1 = to_grid(native)
        # QC: the subject's brain (the outline of the extracted brain, or the foreground of a skull-stripped
        # input) in MNI space against the template's brain mask; with a skull left on, this measures the head
        warped_brain = to_grid(foreground_mask(native), "linear")
        dice_brain = dice(warped_brain, on_grid["mask"])
        corr = masked_correlation(warped_t1, on_grid["t1"], on_grid["mask"])
        # the template's brain mask pulled back (its accuracy is the registration's); outside the subject's
        # outline it holds zero-valued voxels, which Atropos models as CSF
        native_mask = to_native("mask")
        native_mask = native_mask.new_image_like((native_mask.numpy() >= 0.5).astype(np.float32))
        if native_mask.numpy().sum() == 0:
            raise DataError("registration failed: the template brain mask falls outside the image")

        dice_tissue, jac_mean, gm_ml, corr_gm = float("nan"), float("nan"), float("nan"), float("nan")
        if config.target == "quasiraw":
            volume = warped_t1 * on_grid["mask"]
        else:
            t2 = time.perf_counter()
            priors = [to_native(k) for k in ("csf", "gm", "wm")]
            try:  # r=0: Atropos seeds its generator with a constant (its default, 1, seeds from the clock)
                seg = ants.atropos(a=smooth_inside(native, config.segmentation_smoothing), x=native_mask, i=priors,
                                   m="[0.1,1x1x1]", c=f"[{config.atropos_iterations},0]",
                                   priorweight=config.prior_weight, r=0)
            except Exception as exc:  # ANTs says only "non-zero status"; in practice the mask holds no tissue
                raise DataError("segmentation failed: Atropos found no tissue classes inside the brain mask "
                                f"(a failed registration or brain extraction usually; ANTs said: {exc})") from None
            csf_n, gm_n, wm_n = seg["probabilityimages"]
            spacing = float(np.prod(native.spacing))
            gm_ml = float(gm_n.numpy().sum() * spacing / 1000.0)
            log.info("Atropos segmentation done (%.1f s), native GM %.1f ml", time.perf_counter() - t2, gm_ml)
            stages["segmentation"] = round(time.perf_counter() - t2, 2)
            gm_t = to_grid(antialias(gm_n, grid_mm))
            corr_gm = masked_correlation(gm_t, on_grid["gm"], on_grid["mask"])
            tissue = to_grid(gm_n.new_image_like(gm_n.numpy() + wm_n.numpy()))
            dice_tissue = dice(tissue, on_grid["gm"] + on_grid["wm"])
            jac = np.ones(grid.shape, np.float32)
            if config.modulation != "none" and fwd:
                if kind == "syn" and len(fwd) > 1:
                    field = ants.create_jacobian_determinant_image(fixed, fwd[0])
                    jac = ants.resample_image_to_target(antialias(field, grid_mm), ref, interp_type="linear").numpy()
                if config.modulation == "full":
                    jac = jac * _affine_det(fwd[-1])
            jac_mean = float(jac[on_grid["mask"] > 0.5].mean())
            volume = gm_t * jac
    log.info("metrics: dice_brain %.4f, corr_template %.4f, corr_gm %.4f, dice_tissue %.4f", dice_brain, corr,
             corr_gm, dice_tissue)
    return SubjectResult(np.asarray(volume, np.float32), dice_brain, dice_tissue, corr, jac_mean,
                         np.asarray(warped_t1, np.float32), gm_ml, corr_gm, strip.decision, strip.outside,
                         round(strip.seconds, 2), stages)


@contextlib.contextmanager
def _temp_files_in(path: str):
    """Point :mod:`tempfile`'s default directory at ``path`` for the block. ANTsPy's Atropos writes its
    probability images to ``tempfile.mktemp()`` names and never removes them (three per subject, ~20 MB at
    1 mm); inside the subject's scratch directory they go with it. Prep runs one subject at a time per
    process, so the process-wide setting is not shared with another subject."""
    before = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield
    finally:
        tempfile.tempdir = before


def ants_seed(seed: int) -> int:
    """The ``--random-seed`` given to antsRegistration for the user's ``seed`` (>= 0): ``seed + 1``, because
    ANTs treats 0 as "no fixed seed" and seeds from the clock, which made reruns differ."""
    if seed < 0:
        raise ConfigError(f"--seed must be at least 0, got {seed}")
    return int(seed) + 1


def configure_threads(threads: int | None) -> None:
    """ITK's thread count for this process (must run before ANTs is first used to be sure it applies).
    ``None`` means one: with several threads ITK's reductions (the registration metric's sums) run in an
    order that varies between runs, and so do the outputs' last digits (docs/prep.md, "Determinism")."""
    n = threads or 1
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(n)


__all__ = ["PrepConfig", "SubjectResult", "prepare_subject", "dice", "masked_correlation", "asdict"]
