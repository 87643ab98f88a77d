"""Ready-made pipelines: the paper's defended pipeline and its undefended baseline.

The defended pipeline chains the four stages of the method (arXiv 2603.13182,
Sec. 3): KL-NMF features, statistical top-k selection, feature-space diffusion
purification, and a 1-D CNN. The baseline is the same without the purifier.
"""

from sklearn.pipeline import Pipeline

from .paper import PAPER_PROTOCOL

__all__ = ["make_paper_pipeline", "make_baseline_pipeline"]


def _steps(*, n_components, k, random_state, device, purify, t, n_eot, memory):
    from .classifier import SkorchCNNClassifier
    from .decomposition import KLNMFTransformer
    from .feature_selection import StatSelector

    steps = [
        (
            "nmf",
            KLNMFTransformer(
                n_components=n_components, random_state=random_state, device=device
            ),
        ),
        ("select", StatSelector(k=k)),
    ]
    if purify:
        from .purification import DiffusionPurifier

        purifier = DiffusionPurifier(
            t=t, n_eot=n_eot, random_state=random_state, device=device
        )
        if memory is not None:
            purifier.set_params(memory=memory)
        steps.append(("purify", purifier))
    steps.append(
        ("clf", SkorchCNNClassifier(random_state=random_state, device=device))
    )
    return steps


def make_paper_pipeline(
    *,
    n_components=PAPER_PROTOCOL["n_components"],
    k=10,
    t=PAPER_PROTOCOL["t"],
    n_eot=PAPER_PROTOCOL["n_eot"],
    random_state=0,
    device="cpu",
    memory=None,
    **params,
):
    """The paper's defended pipeline: NMF -> selection -> purifier -> CNN.

    Parameters
    ----------
    n_components : int, default=15
        Rank of the KL-NMF (the paper's rank 15).
    k : int or "all", default=10
        Number of NMF components kept by :class:`~sknnmfdiff.StatSelector`.
        The paper keeps the "top-M" components without giving M; 10 of 15 is
        our choice.
    t : int, default=41
        Diffusion timestep of the purifier (the paper's t = 41), in
        ``0 .. n_steps`` (1000); ``t=0`` disables purification.
    n_eot : int, default=8
        Number of noise draws averaged by the purifier (the paper's EOT K = 8).
    random_state : int, RandomState instance or None, default=0
        Seed passed to every stochastic stage, for reproducible fits.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device of every stage.
    memory : str, joblib.Memory or None, default=None
        Cache for :class:`~sklearn.pipeline.Pipeline` (fitted NMF and selector)
        and for the purifier's denoiser training, so that a grid search over
        ``purify__t`` never refits the NMF or retrains the denoiser.
    **params
        Further parameters in ``step__param`` form (e.g. ``nmf__max_iter=100``,
        ``clf__max_epochs=50``), set with :meth:`Pipeline.set_params`.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted, with steps ``("nmf", "select", "purify", "clf")``. Input ``X``
        of shape (n_samples, H*W), float in [0, 1] (pixels).

    Raises
    ------
    ValueError
        If ``params`` names an unknown step or parameter.

    References
    ----------
    "Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
    Classification", CVPR 2026, arXiv 2603.13182.

    Examples
    --------
    >>> from sknnmfdiff import make_paper_pipeline
    >>> pipe = make_paper_pipeline(clf__max_epochs=20)
    >>> [name for name, _ in pipe.steps]
    ['nmf', 'select', 'purify', 'clf']
    """
    pipe = Pipeline(
        _steps(
            n_components=n_components,
            k=k,
            random_state=random_state,
            device=device,
            purify=True,
            t=t,
            n_eot=n_eot,
            memory=memory,
        ),
        memory=memory,
    )
    if params:
        pipe.set_params(**params)
    return pipe


def make_baseline_pipeline(
    *, n_components=PAPER_PROTOCOL["n_components"], k=10, random_state=0, device="cpu", memory=None, **params
):
    """The undefended baseline: NMF -> selection -> CNN (no purifier).

    Parameters
    ----------
    n_components : int, default=15
        Rank of the KL-NMF (the paper's rank 15).
    k : int or "all", default=10
        Number of NMF components kept by :class:`~sknnmfdiff.StatSelector`.
    random_state : int, RandomState instance or None, default=0
        Seed passed to every stochastic stage.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device of every stage.
    memory : str, joblib.Memory or None, default=None
        Cache of the fitted NMF and selector (:class:`~sklearn.pipeline.Pipeline`).
    **params
        Further parameters in ``step__param`` form, set with
        :meth:`Pipeline.set_params`.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted, with steps ``("nmf", "select", "clf")``.

    Raises
    ------
    ValueError
        If ``params`` names an unknown step or parameter.

    Examples
    --------
    >>> from sknnmfdiff import make_baseline_pipeline
    >>> [name for name, _ in make_baseline_pipeline().steps]
    ['nmf', 'select', 'clf']
    """
    pipe = Pipeline(
        _steps(
            n_components=n_components,
            k=k,
            random_state=random_state,
            device=device,
            purify=False,
            t=None,
            n_eot=None,
            memory=None,
        ),
        memory=memory,
    )
    if params:
        pipe.set_params(**params)
    return pipe
