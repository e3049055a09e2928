"""Input preparation (``anatlearn prep``): a pure-Python approximation of CAT12 VBM and of OpenBHB's
quasi-raw preprocessing on ANTsPy, bringing users' T1w images into the released weights' input space.
Needs the optional dependency ``antspyx`` (``pip install anatlearn[prep]``) and, to strip skulls, ``deepbet``
(``pip install --no-deps deepbet==1.0.2``). See docs/prep.md."""

from __future__ import annotations

from anatlearn.errors import ConfigError

# sigma (mm) of the smoothing inside the brain of the image segmentation sees (PrepConfig.segmentation_smoothing;
# chosen on development moves of a real head, issue 39, docs/prep.md); here so the command line reads it light
SEGMENTATION_SMOOTHING_MM = 1.0


def ants_version() -> str:
    try:
        from importlib.metadata import version

        return version("antspyx")
    except Exception:  # not installed
        return "not installed"


def require_ants(skull_strip: str = "no") -> None:
    """Raise a clear error when ANTsPy, or deepbet for ``--skull-strip auto|yes``, is missing (both are
    optional dependencies), before any subject is started."""
    import importlib.util

    try:
        import ants  # noqa: F401
    except ImportError:
        raise ConfigError("anatlearn prep needs ANTsPy: pip install 'anatlearn[prep]' (antspyx==0.6.3)") from None
    missing = [m for m in ("deepbet", "cc3d", "fill_voids", "tqdm") if importlib.util.find_spec(m) is None]
    if skull_strip != "no" and missing:
        raise ConfigError(f"--skull-strip {skull_strip} needs deepbet ({', '.join(missing)} missing): pip install "
                          f"'anatlearn[prep]' && pip install --no-deps deepbet==1.0.2 (or --skull-strip no for "
                          f"skull-stripped inputs)")


def run_prep(*args, **kwargs):
    from anatlearn.prep.run import run_prep as _run

    return _run(*args, **kwargs)


run_prep.__doc__ = "See :func:`anatlearn.prep.run.run_prep`."

__all__ = ["ants_version", "require_ants", "run_prep"]
