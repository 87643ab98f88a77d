"""Interrupted work resumes without redoing what was finished: the stages of an attacked
batch (checkpoints inside a batch) and the study's fitted models."""

import numpy as np
import pytest
import torch
from pyautoattack.autopgd_base import APGDAttack
from pyautoattack.square import SquareAttack
from test_evaluation import FAST, LinearModel, make_linear_task
from torch import nn

from sknnmfdiff.evaluation import run_attack


class NoisyMLP(nn.Module):
    """A small fixed MLP on flattened (N, 1, 8, 8) inputs with Gaussian input noise from its
    own generator, shared by the rows of a call: its gradients depend on the noise drawn."""

    def __init__(self, noise_std=0.3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(123)
        self.hidden, self.out = nn.Linear(64, 16), nn.Linear(16, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.noise_std, self.randomized, self.n_classes = noise_std, noise_std > 0, 2
        self.gen = torch.Generator().manual_seed(seed)
        self.eval()

    def manual_seed(self, seed):
        self.gen.manual_seed(int(seed))

    def forward(self, x):
        z = x.flatten(1) + self.noise_std * torch.randn(64, generator=self.gen)
        return self.out(torch.tanh(self.hidden(z)))


def _mlp_task():
    X = np.random.default_rng(0).uniform(0, 1, size=(30, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        y = NoisyMLP(noise_std=0.0)(torch.from_numpy(X)).argmax(1).numpy()
    return X, y


class _Stages:
    """Counts the calls into AutoAttack's APGD and Square (one per stage of the cascade)
    and raises KeyboardInterrupt inside call number ``interrupt_at``, as Ctrl-C would.

    A stage enters through ``perturb`` or, where the adaptive protocol runs the search
    itself, ``attack_single_run``; only the outermost call is counted."""

    def __init__(self, monkeypatch, interrupt_at=None):
        self.calls, self.interrupt_at, self._depth = [], interrupt_at, 0
        for cls in (APGDAttack, SquareAttack):
            for name in ("perturb", "attack_single_run"):
                monkeypatch.setattr(cls, name, self._wrap(getattr(cls, name), cls.__name__))

    def _wrap(self, method, name):
        def wrapped(attack, *args, **kwargs):
            if self._depth == 0:
                self.calls.append(name)
                if len(self.calls) == self.interrupt_at:
                    raise KeyboardInterrupt
            self._depth += 1
            try:
                return method(attack, *args, **kwargs)
            finally:
                self._depth -= 1
        return wrapped


@pytest.mark.parametrize("protocol, noise, from_end", [("paper", 0.0, 0), ("adaptive", 0.3, 1)])
def test_interrupted_attack_loses_at_most_one_stage(tmp_path, monkeypatch, protocol, noise,
                                                    from_end):
    X, y = _mlp_task()
    kw = dict(eps=0.02, protocol=protocol, batch_size=15, n_eot=4, square_n_eot=2,
              progress=False, return_details=True, **FAST)

    def model():
        return NoisyMLP(noise_std=noise)

    with monkeypatch.context() as m:
        stages = _Stages(m)
        x_ref, ref = run_attack(model(), X, y, **kw)
    n_stages = len(stages.calls)
    # Two batches of (APGD-CE, Square) or, screened, (APGD-CE screen, restart 1,
    # restart 2, Square).
    per_batch = 2 if protocol == "paper" else 4
    assert stages.calls[-per_batch:] == ["APGDAttack"] * (per_batch - 1) + ["SquareAttack"]
    assert n_stages > per_batch

    # Ctrl-C inside the second batch: in its Square stage (paper), or in its second APGD
    # restart (adaptive: the stage left draws the model's noise from where it was).
    interrupt_at = n_stages - from_end
    with monkeypatch.context() as m:
        _Stages(m, interrupt_at=interrupt_at)
        with pytest.raises(KeyboardInterrupt):
            run_attack(model(), X, y, checkpoint_dir=tmp_path, **kw)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["batch_00000.npz", "stage_00001.npz"]

    with monkeypatch.context() as m:
        resumed = _Stages(m)
        x_res, det = run_attack(model(), X, y, checkpoint_dir=tmp_path, **kw)
    # The finished batch is loaded and the finished stages of the other are not redone.
    assert det["n_batches_loaded"] == 1
    assert resumed.calls == stages.calls[interrupt_at - 1:]
    np.testing.assert_array_equal(x_res, x_ref)
    assert det["broken_by"] == ref["broken_by"] and det["counts"] == ref["counts"]
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["batch_00000.npz", "batch_00001.npz"]


def test_interrupt_inside_the_first_stage_leaves_no_checkpoint_and_reruns_the_same(tmp_path, monkeypatch):
    X, y, w, b = make_linear_task(n=20, seed=2)
    kw = dict(eps=0.03, protocol="adaptive", progress=False, n_eot=4, square_n_eot=2, **FAST)
    x_ref = run_attack(LinearModel(w, b, noise_std=0.1, seed=1), X, y, **kw)
    with monkeypatch.context() as m:
        _Stages(m, interrupt_at=1)
        with pytest.raises(KeyboardInterrupt):
            run_attack(LinearModel(w, b, noise_std=0.1, seed=1), X, y, checkpoint_dir=tmp_path,
                       **kw)
    assert not list(tmp_path.glob("*.npz"))
    x_res = run_attack(LinearModel(w, b, noise_std=0.1, seed=1), X, y, checkpoint_dir=tmp_path,
                       **kw)
    np.testing.assert_array_equal(x_res, x_ref)


_TINY_STUDY = dict(
    data=None, phantom_samples=80, image_size=24, n_components=5, k=3, spaces=("feature",),
    protocols=("adaptive",), eps_grid=(0.0,), n_draws=8, nmf_max_iter=50, clf_max_epochs=5,
    attack={"n_restarts": 1, "n_iter": 10, "square_queries": 50, "n_eot": 2, "square_n_eot": 2},
    grid_attack={"n_restarts": 1, "n_iter": 5, "square_queries": 20, "square_n_eot": 2},
    defence_params={"smoothing": {"smooth__n": 200}, "adversarial": {"adv__n_steps": 2}},
)


def _study_interrupted_at_first_evaluation(monkeypatch, **settings):
    """Run the tiny study until its first attack, which is interrupted (Ctrl-C); returns
    the names of the models fitted, in order, and the log."""
    import sknnmfdiff.evaluation
    from sklearn.pipeline import Pipeline

    from sknnmfdiff.study import run_paper_study

    fitted, log = [], []
    fit = Pipeline.fit

    def counting_fit(pipe, *args, **kwargs):
        fitted.append(pipe.steps[-1][0])
        return fit(pipe, *args, **kwargs)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Pipeline, "fit", counting_fit)
        m.setattr(sknnmfdiff.evaluation, "evaluate_robustness", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_paper_study(**{**_TINY_STUDY, **settings}, log=log.append)
    return fitted, log


def test_rerun_after_an_interrupt_reuses_the_fitted_models(tmp_path, monkeypatch):
    out = tmp_path / "study"
    fitted, _ = _study_interrupted_at_first_evaluation(monkeypatch, out=str(out))
    assert fitted == ["clf", "clf", "adv", "smooth"]  # baseline, defended, the two extra
    saved = {p.name: p.read_bytes() for p in (out / "models").glob("*.joblib")}
    assert set(saved) == {f"{n}.joblib" for n in ("baseline", "defended", "adversarial",
                                                  "smoothing")}

    # The rerun fits nothing: every model is loaded.
    fitted, log = _study_interrupted_at_first_evaluation(monkeypatch, out=str(out))
    assert fitted == []
    assert sum("reusing" in line for line in log) == 4
    assert {p.name: p.read_bytes() for p in (out / "models").glob("*.joblib")} == saved

    # Other settings of one defence refit that defence only, and say why.
    fitted, log = _study_interrupted_at_first_evaluation(
        monkeypatch, out=str(out),
        defence_params={**_TINY_STUDY["defence_params"], "smoothing": {"smooth__n": 300}})
    assert fitted == ["smooth"]
    (why,) = [line for line in log if "refitting" in line]
    assert "smoothing.joblib was fitted with other model parameters (smooth.n)" in why

    # Other training data refit everything.
    fitted, log = _study_interrupted_at_first_evaluation(monkeypatch, out=str(out), seed=1)
    assert fitted == ["clf", "clf", "adv", "smooth"]
    assert all("training data" in line for line in log if "refitting" in line)
