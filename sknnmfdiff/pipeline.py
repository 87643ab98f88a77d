"""Ready-made pipelines: the paper's defended pipeline, its undefended baseline and
the adversarially trained and the randomized-smoothing variants, and one factory for all
four defences.

The defended pipeline chains the four stages of the method (arXiv 2603.13182,
Sec. 3): KL-NMF features, statistical top-k selection, feature-space diffusion
purification, and a 1-D CNN. The baseline is the same without the purifier. The
adversarially trained pipeline ends in an :class:`~sknnmfdiff.AdversarialClassifier`
(PGD or TRADES training through the purifier); the smoothed pipeline in a
:class:`~sknnmfdiff.SmoothedClassifier` (certified L2 radii, Cohen et al. 2019).
"""

from sklearn.pipeline import Pipeline

from .paper import PAPER_PROTOCOL

__all__ = [
    "DEFENCES",
    "make_adversarial_pipeline",
    "make_baseline_pipeline",
    "make_defence_pipeline",
    "make_paper_pipeline",
    "make_smoothed_pipeline",
]

#: Names of the defences :func:`make_defence_pipeline` builds, in the order of the study's
#: defences table.
DEFENCES = ("none", "purifier", "adversarial", "smoothing")

#: The adversarial training of :func:`make_defence_pipeline` ("adversarial"): TRADES
#: (beta 6) at a training radius of 0.10 feature units without the purifier in the loop,
#: a 64-wide MLP trained 300 epochs: of the settings tried on the validation part of the
#: paper split (``benchmarks/adversarial_training.py --part val --light``), the one with
#: the highest mean of clean and robust balanced accuracy (85.2 and 41.8 %).
ADVERSARIAL_DEFAULTS = dict(method="trades", eps=0.10, purify=False,
                            adv__classifier__width=64, adv__classifier__max_epochs=300)


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


def make_adversarial_pipeline(
    *,
    n_components=PAPER_PROTOCOL["n_components"],
    k=10,
    purify=True,
    t=PAPER_PROTOCOL["t"],
    n_eot=PAPER_PROTOCOL["n_eot"],
    method="trades",
    eps=PAPER_PROTOCOL["eps"],
    n_steps=10,
    step_size=None,
    beta=6.0,
    attack_n_eot=4,
    space="feature",
    random_state=0,
    device="cpu",
    memory=None,
    **params,
):
    """An adversarially trained pipeline: NMF -> selection -> purifier + CNN trained on
    adversarial examples (:class:`~sknnmfdiff.AdversarialClassifier`).

    Parameters
    ----------
    n_components : int, default=15
        Rank of the KL-NMF (the paper's rank 15).
    k : int or "all", default=10
        Number of NMF components kept by :class:`~sknnmfdiff.StatSelector`.
    purify : bool, default=True
        Put the paper's purifier in the loop (in training and at prediction).
    t : int, default=41
        Diffusion timestep of the purifier (the paper's t = 41).
    n_eot : int, default=8
        Noise draws averaged by one purifier call (the paper's EOT K = 8).
    method : {"pgd", "trades"}, default="trades"
        Adversarial training objective (Madry et al., 2018; Zhang et al., 2019).
    eps : float, default=0.1
        L-inf radius of the training attack, in [0, 1]: feature units for
        ``space="feature"``, pixel units for ``space="pixel"``.
    n_steps : int, default=10
        Steps of the training attack.
    step_size : float or None, default=None
        Its step size; None means ``2.5 * eps / n_steps``.
    beta : float, default=6.0
        TRADES' weight of the robustness term.
    attack_n_eot : int, default=4
        Purifier calls averaged per gradient of the training attack.
    space : {"feature", "pixel"}, default="feature"
        Threat model of the training attack. ``"feature"``: steps
        ``("nmf", "select", "adv")``, the attack perturbs the selected features.
        ``"pixel"``: one step ``("adv",)`` whose ``features`` are the NMF and the
        selector, the attack perturbs the pixels through the NNLS projection (slow).
    random_state : int, RandomState instance or None, default=0
        Seed passed to every stochastic stage and to the attack.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device of every stage.
    memory : str, joblib.Memory or None, default=None
        Cache of the fitted NMF and selector (feature space) and of the denoiser's
        training.
    **params
        Further parameters in ``step__param`` form (``nmf__max_iter=100``,
        ``adv__classifier__max_epochs=50``, ``adv__purifier__t=20``).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted. Input ``X`` of shape (n_samples, H*W), pixels in [0, 1].

    Raises
    ------
    ValueError
        If ``space`` is unknown or ``params`` names an unknown step or parameter.

    Examples
    --------
    >>> from sknnmfdiff import make_adversarial_pipeline
    >>> [name for name, _ in make_adversarial_pipeline(method="pgd").steps]
    ['nmf', 'select', 'adv']
    """
    from .adversarial import AdversarialClassifier

    if space not in ("feature", "pixel"):
        raise ValueError(f"space must be 'feature' or 'pixel', got {space!r}.")
    steps = _steps(n_components=n_components, k=k, random_state=random_state, device=device,
                   purify=purify, t=t, n_eot=n_eot, memory=memory)
    *front, (_, clf) = steps
    purifier = front.pop() if purify else None
    adv = AdversarialClassifier(
        purifier=None if purifier is None else purifier[1], classifier=clf,
        features=Pipeline(front) if space == "pixel" else None, method=method, eps=eps,
        n_steps=n_steps, step_size=step_size, beta=beta, n_eot=attack_n_eot,
        random_state=random_state,
    )
    pipe = Pipeline([("adv", adv)] if space == "pixel" else front + [("adv", adv)],
                    memory=memory if space == "feature" else None)
    if params:
        pipe.set_params(**params)
    return pipe


def make_smoothed_pipeline(
    *,
    n_components=PAPER_PROTOCOL["n_components"],
    k=10,
    sigma=0.25,
    n0=100,
    n=1000,
    alpha=0.001,
    denoise=True,
    random_state=0,
    device="cpu",
    memory=None,
    **params,
):
    """A randomized-smoothing pipeline: NMF -> selection -> :class:`~sknnmfdiff.SmoothedClassifier`.

    The smoothed classifier ``g(z) = argmax_c P(f(D(z + sigma eps)) = c)`` (Cohen et al.,
    2019) with the diffusion denoiser as ``D`` (denoised smoothing; Salman et al., 2020;
    Carlini et al., 2023), certifying an L2 radius in feature units per sample.

    Parameters
    ----------
    n_components : int, default=15
        Rank of the KL-NMF (the paper's rank 15).
    k : int or "all", default=10
        Number of NMF components kept by :class:`~sknnmfdiff.StatSelector`.
    sigma : float, default=0.25
        Standard deviation of the smoothing noise, feature units (> 0).
    n0, n : int, default=100, 1000
        Selection and estimation draws of CERTIFY (``n`` also those of PREDICT).
    alpha : float, default=0.001
        Failure probability of the certificate (and PREDICT's test level).
    denoise : bool, default=True
        Denoise every noisy draw with a :class:`~sknnmfdiff.DiffusionPurifier`'s
        denoiser at the step whose noise level matches ``sigma``; False gives plain
        Gaussian smoothing.
    random_state : int, RandomState instance or None, default=0
        Seed of every stochastic stage and of the smoothing draws.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device of every stage.
    memory : str, joblib.Memory or None, default=None
        Cache of the fitted NMF and selector, and of the denoiser's training.
    **params
        Further parameters in ``step__param`` form (``smooth__n=10000``).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted, steps ``("nmf", "select", "smooth")``; input pixels (n_samples, H*W)
        in [0, 1]. ``named_steps["smooth"].certify(features)`` certifies.

    Raises
    ------
    ValueError
        If ``params`` names an unknown step or parameter.

    Examples
    --------
    >>> from sknnmfdiff import make_smoothed_pipeline
    >>> [name for name, _ in make_smoothed_pipeline().steps]
    ['nmf', 'select', 'smooth']
    """
    from .smoothing import SmoothedClassifier

    *front, (_, clf) = _steps(n_components=n_components, k=k, random_state=random_state,
                              device=device, purify=denoise, t=1, n_eot=1, memory=memory)
    purifier = front.pop()[1] if denoise else None
    smooth = SmoothedClassifier(purifier, clf, sigma=sigma, n0=n0, n=n, alpha=alpha,
                                device=device, random_state=random_state)
    pipe = Pipeline(front + [("smooth", smooth)], memory=memory)
    if params:
        pipe.set_params(**params)
    return pipe


def make_defence_pipeline(defence, *, n_components=PAPER_PROTOCOL["n_components"], k=10,
                          random_state=0, device="cpu", memory=None, **params):
    """The pipeline of one defence by name, with the settings the study reports.

    Parameters
    ----------
    defence : {"none", "purifier", "adversarial", "smoothing"}
        ``"none"``: :func:`make_baseline_pipeline`; ``"purifier"``: the paper's
        :func:`make_paper_pipeline`; ``"adversarial"``: :func:`make_adversarial_pipeline`
        with ``ADVERSARIAL_DEFAULTS`` (TRADES, training radius 0.10, no purifier);
        ``"smoothing"``: :func:`make_smoothed_pipeline` (sigma 0.25, with the denoiser).
    n_components, k, random_state, device, memory
        As in the factories.
    **params
        Arguments of that factory (``t=20``, ``sigma=0.5``, ``eps=0.05``) or
        ``step__param`` parameters; they override the defaults above.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted.

    Raises
    ------
    ValueError
        If ``defence`` is not one of :data:`DEFENCES`.
    """
    factories = {"none": make_baseline_pipeline, "purifier": make_paper_pipeline,
                 "adversarial": make_adversarial_pipeline, "smoothing": make_smoothed_pipeline}
    if defence not in factories:
        raise ValueError(f"defence must be one of {', '.join(DEFENCES)}; got {defence!r}.")
    kwargs = dict(ADVERSARIAL_DEFAULTS) if defence == "adversarial" else {}
    kwargs.update(params)
    return factories[defence](n_components=n_components, k=k, random_state=random_state,
                              device=device, memory=memory, **kwargs)
