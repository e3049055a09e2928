"""Input preparation (``anatlearn prep``): a pure-Python approximation of CAT12 VBM and of OpenBHB's
quasi-raw preprocessing on ANTsPy, bringing users' T1w images into the released weights' input space.
Needs the optional dependency ``antspyx`` (``pip install anatlearn[prep]``). See docs/prep.md."""

from __future__ import annotations

from anatlearn.errors import ConfigError


def ants_version() -> str:
    try:
        from importlib.metadata import version

        return version("antspyx")
    except Exception:  # not installed
        return "not installed"


def require_ants() -> None:
    """Raise a clear error when ANTsPy is missing (it is an optional dependency)."""
    try:
        import ants  # noqa: F401
    except ImportError:
        raise ConfigError("anatlearn prep needs ANTsPy: pip install 'anatlearn[prep]' (antspyx==0.6.3)") from None


def run_prep(*args, **kwargs):
    from anatlearn.prep.run import run_prep as _run

    return _run(*args, **kwargs)


run_prep.__doc__ = "See :func:`anatlearn.prep.run.run_prep`."

__all__ = ["ants_version", "require_ants", "run_prep"]
