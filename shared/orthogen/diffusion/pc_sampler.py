"""The predictor-corrector (PC) sampler of the reverse VE-SDE.

Song et al. 2021, Algorithm 2 (learned from yang-song/score_sde_pytorch ``sampling.get_pc_sampler``):
start from the prior, then at each noise level of a decreasing grid run the corrector, then the
predictor; with ``denoise`` the last predictor step returns its noise-free mean (``noise_removal``).

The grid: ``n = max(1, round(steps * t_start))`` times t_i = linspace(t_start, eps, n), levels
sigma_i = sigma(t_i), and a final sigma_n = 0, so the last predictor step removes the remaining
sigma(eps) ~ sigma_min of noise. A full run (t_start = 1) takes ``steps`` steps; a run from t0 < 1
(SDEdit) keeps the same step density (N = 500 from t0 = 0.4: 200 steps). NFE per run = n (1 + corrector
steps) with a predictor, as score_sde reports.
"""
from __future__ import annotations

import logging

import torch

from orthogen import progress
from orthogen.diffusion.arguments import end_time, sample_shape, start_time, step_count
from orthogen.diffusion.conditioned_score import ScoreFunction
from orthogen.diffusion.correctors import Corrector, NoneCorrector, corrector_by_name
from orthogen.diffusion.predictors import NonePredictor, Predictor, predictor_by_name
from orthogen.diffusion.score_evaluation_counter import ScoreEvaluationCounter
from orthogen.diffusion.ve_sde import VESDE
from orthogen.errors import InputError

logger = logging.getLogger(__name__)


def initial_state(sde: VESDE, shape, generator, x_init, t_start: float, device) -> torch.Tensor:
    """The state a reverse run starts from: ``x_init`` if given (checked against ``shape``), else
    N(0, sigma(t_start)^2 I) noise (the prior for t_start = 1) drawn with ``generator``."""
    shape = sample_shape(shape)
    if x_init is not None:
        if not isinstance(x_init, torch.Tensor) or tuple(x_init.shape) != shape:
            got = tuple(x_init.shape) if isinstance(x_init, torch.Tensor) else type(x_init).__name__
            raise InputError(f"expected a tensor of shape {shape}, got {got}", "x_init")
        return x_init
    if device is None:
        device = generator.device if generator is not None else "cpu"
    noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    return sde.sigma(t_start).item() * noise


class PredictorCorrectorSampler:
    """PC sampling of the reverse VE-SDE with a score function ``score_fn(x, sigma) -> score``.

    Args:
        sde: the VE-SDE (noise schedule).
        predictor: a :class:`Predictor` or its name ("reverse_diffusion", "none").
        corrector: a :class:`Corrector` or its name ("langevin", "none").
        steps: noise levels of a full run (t from 1 to eps); default ``sde.N``.
        snr: the Langevin corrector's signal-to-noise ratio (used when ``corrector`` is a name).
        corrector_steps: Langevin steps per level (used when ``corrector`` is a name).
        denoise: return the last predictor step's mean (no noise added at the end).
        eps: the smallest time of the grid (score_sde's sampling eps for VE).
        progress: show a tqdm bar; None shows it on a terminal only.

    Attributes:
        nfe: network (score) evaluations of the last :meth:`sample` call; also logged at INFO.
    """

    def __init__(self, sde: VESDE, predictor: Predictor | str = "reverse_diffusion",
                 corrector: Corrector | str = "langevin", steps: int | None = None, snr: float = 0.4,
                 corrector_steps: int = 1, denoise: bool = True, eps: float = 1e-5, progress: bool | None = None):
        if not isinstance(sde, VESDE):
            raise InputError(f"expected a VESDE, got {type(sde).__name__}", "sde")
        self.sde = sde
        self.predictor = predictor if isinstance(predictor, Predictor) else predictor_by_name(predictor)
        self.corrector = (corrector if isinstance(corrector, Corrector)
                          else corrector_by_name(corrector, snr, corrector_steps))
        if isinstance(self.predictor, NonePredictor) and isinstance(self.corrector, NoneCorrector):
            raise InputError("predictor and corrector are both 'none'; expected at least one of them", "predictor")
        self.steps = sde.N if steps is None else step_count(steps, "steps")
        self.denoise = bool(denoise)
        self.eps = end_time(eps, "eps")
        self.progress = progress
        self.nfe = 0

    def steps_from(self, t_start: float = 1.0) -> int:
        """Steps of a run from ``t_start``: round(steps * t_start), at least 1."""
        return max(1, round(self.steps * start_time(t_start, "t_start", self.eps)))

    def sigma_grid(self, t_start: float = 1.0) -> torch.Tensor:
        """Noise levels of a run from ``t_start``: sigma(linspace(t_start, eps, n)) then 0, float64 (n + 1,)."""
        n = self.steps_from(t_start)
        times = torch.linspace(t_start, self.eps, n, dtype=torch.float64)
        return torch.cat([self.sde.sigma(times), torch.zeros(1, dtype=torch.float64)])

    @torch.no_grad()
    def sample(self, score_fn: ScoreFunction, shape, generator: torch.Generator | None = None,
               x_init: torch.Tensor | None = None, t_start: float = 1.0, device=None) -> torch.Tensor:
        """Run the reverse process from ``t_start`` to eps.

        Args:
            score_fn: (x (B, C, *spatial), sigma (B,)) -> score shaped like x; a network returning the
                score, or :class:`ConditionedScore` for a conditional one.
            shape: (B, C, *spatial) of the samples.
            generator: the random stream (all noise comes from it: same seed, same sample); on the
                sampling device.
            x_init: the state at ``t_start`` (e.g. an SDEdit start); default: noise of std
                sigma(t_start), the prior N(0, sigma_max^2 I) for t_start = 1.
            t_start: time in (eps, 1] to start at.
            device: where to sample when ``x_init`` is None; default the generator's device, else CPU.

        Runs under ``torch.no_grad()``; put a network in eval mode first.

        Returns:
            samples (B, C, *spatial) in data units, float32 (or x_init's dtype).
        """
        sigmas = self.sigma_grid(t_start)
        x = initial_state(self.sde, shape, generator, x_init, t_start, device)
        counted = ScoreEvaluationCounter(score_fn)
        batch = x.shape[0]
        x_mean = x
        levels = sigmas.to(device=x.device, dtype=x.dtype)
        disable = None if self.progress is None else not self.progress
        for i in progress.steps(range(len(sigmas) - 1), len(sigmas) - 1, "PC sampling", disable):
            sigma, sigma_next = levels[i].expand(batch), levels[i + 1].expand(batch)
            x, x_mean = self.corrector.update(counted, x, sigma, generator)
            x, x_mean = self.predictor.update(counted, x, sigma, sigma_next, generator)
        self.nfe = counted.count
        logger.info("PC sampler: %d steps from t=%g, %d network evaluations", len(sigmas) - 1, t_start, self.nfe)
        return x_mean if self.denoise else x
