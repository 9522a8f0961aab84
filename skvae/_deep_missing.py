"""Missing entries (NaN) in the deep models' data: training and answers on what was observed.

A row's mask is m = ~isnan(x). The encoder reads the row with its missing
entries at the networks' offset, i.e. 0 in standardised units (the
zero-filled input of MIWAE, Mattei & Frellsen 2019), and every loss and score
reads the observed entries only: ``Autoencoder`` their mean squared error,
``VariationalAutoencoder`` its likelihood family with the mask (ELBO in
training and validation, IWAE in ``score_samples``). The start is the EM
solution of probabilistic PCA on the observed entries
(:func:`skvae._missing.fit_em`), in the networks' units.

Whether a fit's data has any NaN is decided once per call: data without NaN
takes the usual paths, where no mask is ever built.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import binomtest, norm
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._distributed import participants
from ._missing import fit_em, has_nan
from ._placement import BATCH_ELEMENTS, is_out_of_core, map_rows
from ._stopping import SIGNIFICANCE, _significantly_better
from ._training import Objective
from ._vae_module import balanced_draws

#: Rows of training data encoded after fit to estimate the codes' Gaussian.
MOMENT_ROWS = 2048

#: The deep models' conditional means: latent points drawn per row and round,
#: and the most rounds of moving the proposal (see :mod:`skvae._conditional`).
IMPUTE_DRAWS, IMPUTE_ROUNDS = 64, 20

#: EM's iteration limit for the deep models' start (their max_iter counts epochs).
EM_MAX_ITER = 1000

#: The deep models' check of their imputations: up to this many of each held-out
#: row's observed entries are hidden, one at a time (a row with a few more holes
#: than it has, not a much harder case).
_FOLDS = 5

#: The share of a batch's observed entries the Autoencoder's encoder does not
#: read in training on rows with holes (see :func:`denoising_loss`).
HIDDEN_SHARE = 0.2


def observed(module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with their missing entries at the networks' offset (0 once
    standardised), and the mask of observed entries: the model's ``fill_missing``."""
    return module.fill_missing(x)


def _column_nanmean(X: torch.Tensor) -> torch.Tensor:
    return torch.nanmean(X.double(), dim=0).to(X.dtype)


class _MissingEntries:
    """What both deep models share: checks and the EM start. The masked
    objective is each model's (``_objective(masked=True)``); transform and
    the scores reach the model's verbs with a mask (see ``skvae._inference``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _check_training_data(self, X: np.ndarray, dtype: torch.dtype) -> None:
        if not has_nan(X):
            return super()._check_training_data(X, dtype)
        name = type(self).__name__
        if participants().active:
            raise ValueError(
                f"{name} fits data with missing entries (NaN) in one process only, not "
                "data-parallel under torchrun; see skvae.single_process."
            )
        missing = np.isnan(X)
        empty = np.flatnonzero(missing.all(axis=0))
        if len(empty):
            names = getattr(self, "feature_names_in_", None)
            j = int(empty[0])
            which = f"column {j}" + (f" ({names[j]!r})" if names is not None else "")
            raise ValueError(
                f"X's {which} has no observed entry, only NaN: no model can estimate "
                "its mean or variance. Drop it, or fill it first."
            )
        super()._check_training_data(np.where(missing, 0, X), dtype)

    def _fit_module(self, X, module, generator, device, state):
        state.missing = has_nan(X)
        history = super()._fit_module(X, module, generator, device, state)
        rows = history.validation_rows
        if not state.missing or state.start is None or rows is None:
            return history
        scores = history.validation_scores
        state.kept_start = history.best_validation_score == scores[0] or not (
            self._imputes_better(X, rows, module, state)
        )
        if state.kept_start:  # the trained weights fill holes no better than the start
            module.load_state_dict(state.start[0])
            history.best_validation_score = scores[0]
        return history

    def _imputes_better(self, X, held_out, module, state) -> bool:
        """Whether the trained weights fill observed entries of the held-out rows,
        each hidden alone in turn, better than the start by more than noise.

        The loss that chose the weights is not the error of filled entries:
        an Autoencoder's reconstructs entries the encoder reads, a VAE's
        likelihood weighs the observed ones, and trained weights can score
        better and fill worse. Each candidate fills with its own model
        (:meth:`_filling_model`); at the start, probabilistic PCA's, whose
        conditional mean is LinearAutoencoder's. The start has seen these
        rows (EM fits all of them), which favours it: the trained weights
        must win clearly.
        """
        device = next(module.parameters()).device  # the CPU, after training
        rows = X[held_out[:MOMENT_ROWS].to(X.device)].to(device)
        seen = ~torch.isnan(rows)
        generator = torch.Generator().manual_seed(0)
        # each row's observed entries in a random order: fold f hides its f-th
        rank = torch.rand(rows.shape, generator=generator).to(device)
        rank = torch.where(seen, rank, 2.0).argsort(dim=1).argsort(dim=1)
        fold = torch.where(seen, rank, -1)
        trained = copy.deepcopy(module.state_dict())
        to = {"device": device, "dtype": rows.dtype}
        errors = []
        for weights, start in ((trained, False), (state.start[0], True)):
            module.load_state_dict(weights)
            mean, cov, noise_variance = self._filling_model(module, X, generator, state, start)
            impute, n_draws = _imputer(_latent_gaussian(mean, cov, to), noise_variance, to)
            error = torch.zeros(len(rows), dtype=torch.float64, device=device)
            for f in range(_FOLDS):
                hide = seen & (fold == f)
                some = hide.any(dim=1)  # rows with fewer observed entries sit this one out
                holed = torch.where(hide[some], torch.nan, rows[some]).numpy()
                filled = map_rows(module, impute, holed, rows.shape[1], device, copies=n_draws)
                missed = torch.where(hide[some], torch.from_numpy(filled) - rows[some], 0.0)
                error[some] += missed.double().pow(2).sum(1)
            errors.append(error)
        module.load_state_dict(trained)
        return _fills_better(*errors)

    def _filling_model(self, module, X, generator, state, start: bool) -> tuple:
        """The latent Gaussian (mean, covariance) and decoder noise variance with
        which ``module``'s weights fill holes (``start``: the EM start's)."""
        raise NotImplementedError

    def _start(self, X, module, generator, device, state):
        if not state.missing:
            return super()._start(X, module, generator, device, state)
        if self.init == "pca":
            imputation = self._em_start(X, module, device)
            state.start = copy.deepcopy(module.state_dict()), imputation
        else:
            module.set_scaling(X, mean=_column_nanmean(X))

    def _em_start(self, X, module, device) -> tuple:
        """Start at the EM solution of probabilistic PCA on the observed entries;
        return its imputation model in the codes' units (latent mean, latent
        covariance, noise variance in the data's units), with which the
        networks' conditional mean is probabilistic PCA's.

        W W' + noise I has eigenvalues s^2 + noise along W's left singular
        vectors; the networks' offset is EM's mean, their scale the root mean
        variance of the observed entries (what they are in standardised units).
        """
        # the fit's seed, as LinearAutoencoder's EM draws it
        generator, _ = self._generator(device)
        model, _ = fit_em(
            X.to(device=device, dtype=torch.float64),
            self.n_components_,
            generator,
            max_iter=EM_MAX_ITER,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            validation_fraction=self.validation_fraction,
        )
        module.set_scaling(X, mean=model.mean.to(device=X.device, dtype=X.dtype))
        scale2 = float(module.scale) ** 2
        axes, s, _ = torch.linalg.svd(model.weight, full_matrices=False)
        variances = (s**2 + model.noise) / scale2
        module.start_at_pca(axes.cpu(), variances.cpu(), model.noise / scale2)
        # x_std = V z + noise with z ~ N(0, diag(s^2) / scale^2) (the Autoencoder's
        # codes; latent dimensions beyond EM's, if any, unused)
        k = self.n_components_
        spread = np.zeros(k)
        spread[: len(s)] = (s**2).cpu().numpy() / scale2
        return np.zeros(k), np.diag(spread), model.noise

    # ------------------------------------------------------------ imputation
    def _conditional_mean(self, X):
        """``X`` with each missing entry (NaN) replaced by the model's E[x_miss | x_obs].

        By adaptive importance sampling (:mod:`skvae._conditional`): the
        posterior of the decoder's affine part given the row's observed
        entries proposes ``IMPUTE_DRAWS`` latent points (at least 2k), weighed by the whole
        model, moved to their weighted moments until it stops moving. At the probabilistic-PCA
        start it is probabilistic PCA's conditional mean exactly; observed
        entries are returned as they are.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with NaN where an entry is missing.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
        """
        return self._impute(X, None)

    def _conditional_sample(self, X, random_state=None):
        """``X`` with its missing entries drawn from the model given the observed
        ones (one importance-weighted latent point, decoded, plus the decoder's
        noise), for multiple imputation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with NaN where an entry is missing.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        X_drawn : ndarray of shape (n_samples, n_features)
        """
        return self._impute(X, check_random_state(random_state))

    def _impute(self, X, rng) -> np.ndarray:
        check_is_fitted(self)
        X, check = self._inference_data(X)
        X = np.array(X if check is None else check(X[:] if is_out_of_core(X) else X))
        holed = np.flatnonzero(np.isnan(X).any(axis=1))
        if rng is not None:  # one U(0, 1) and d standard normals per row, in row order
            uniform, normal = rng.uniform(size=len(X)), rng.standard_normal(X.shape)
        if not len(holed):
            return X
        if self.noise_variance_ is None:
            raise ValueError(
                f"{type(self).__name__}'s conditional mean of missing entries needs a "
                "Gaussian decoder; this model's likelihood has no noise variance."
            )
        to = {"device": self._inference_device(), "dtype": next(self.module_.parameters()).dtype}
        k = self.n_components_
        if self._prior_latent:
            prior = torch.zeros(k, **to), torch.eye(k, **to)
        else:
            prior = _latent_gaussian(self.latent_mean_, self.latent_covariance_, to)
        impute, n_draws = _imputer(prior, self.noise_variance_, to)
        extras = () if rng is None else (uniform[holed], normal[holed])
        X[holed] = self._map_rows(impute, X[holed], X.shape[1], copies=n_draws, extras=extras)
        return X


def _latent_gaussian(mean, cov, to: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes' Gaussian as tensors, a little regularised: it may be singular."""
    cov = np.atleast_2d(cov)
    k = len(cov)
    cov = cov + 1e-9 * max(np.trace(cov) / k, 1e-300) * np.eye(k)
    return torch.as_tensor(mean).to(**to), torch.as_tensor(cov).to(**to)


def _imputer(prior: tuple, noise_variance: float, to: dict):
    """``impute(module, rows, *draws)``, the model verb with this latent
    ``prior`` (mean, covariance tensors) and decoder noise, over balanced draws
    fixed once (at least 2k of them); and how many copies of a row it decodes."""
    k = len(prior[0])
    n_draws = max(IMPUTE_DRAWS, 2 * k)  # balanced draws need 2k
    eps = balanced_draws(n_draws, k, torch.Generator().manual_seed(0), torch.float64).to(**to)

    def impute(module, x, *draws):
        return module.impute(x, prior, noise_variance, eps, IMPUTE_ROUNDS, *draws)

    return impute, n_draws


def codes_gaussian(module, X, generator, masked: bool, noise: bool = True) -> tuple:
    """The mean and covariance of the codes of up to ``MOMENT_ROWS`` random rows
    of ``X``, and the decoder's noise variance: their mean squared
    reconstruction error (data units; of the observed entries if ``masked``,
    the rows' missing entries read at the networks' offset), or None without
    ``noise``. Read ``BATCH_ELEMENTS`` at a time: 2048 wide rows, decoded and
    squared at once, were ~90 MiB at d = 2000."""
    order = torch.randperm(len(X), generator=generator, device=generator.device)
    chosen = order[:MOMENT_ROWS].to(X.device)
    step = max(1, BATCH_ELEMENTS // max(X.shape[1], 1))
    codes, squares, entries = [], torch.zeros((), dtype=torch.float64), 0
    with torch.inference_mode():
        for a in range(0, len(chosen), step):
            rows, mask = X[chosen[a : a + step]], None
            if masked:
                rows, mask = observed(module, rows)
            codes.append(module.encode(rows))
            if noise:
                sq = (module.decode(codes[-1]) - rows) ** 2
                squares += (sq if mask is None else sq * mask).sum(dtype=torch.float64)
                entries += sq.numel() if mask is None else int(mask.sum())
    Z = torch.cat(codes).double().numpy()
    cov = np.atleast_2d(np.cov(Z, rowvar=False, ddof=1 if len(Z) > 1 else 0))
    return Z.mean(axis=0), cov, float(squares) / max(entries, 1) if noise else None


# ------------------------------------------------------------- Autoencoder
def masked_loss(module, x: torch.Tensor) -> torch.Tensor:
    """The mean squared error over a batch's observed entries (standardised units)."""
    return module.loss(*observed(module, x))


def denoising_loss(generator: torch.Generator):
    """The Autoencoder's training loss on rows with holes: each batch hides a
    share ``HIDDEN_SHARE`` of its observed entries from the encoder (read at
    the offset, as missing ones are), and the mean squared error runs over
    all its observed entries. Reconstructing only what it reads, a network
    need not learn to predict what it cannot (the missing entries); hidden
    ones make it (denoising, Vincent et al., 2008; MIDA, Gondara & Wang, 2018).
    The entries to hide come from a stream of their own, seeded from
    ``generator``'s seed, so the batches are those of any other fit."""
    stream = torch.Generator(generator.device).manual_seed(generator.initial_seed() + 1)

    def loss(module, x: torch.Tensor) -> torch.Tensor:
        filled, mask = observed(module, x)
        draw = torch.rand(x.shape, generator=stream, device=stream.device, dtype=x.dtype)
        hide = (draw.to(x.device) < HIDDEN_SHARE) & mask
        xs = module.scale_in(filled)
        sq = (module.decoder(module.encoder(torch.where(hide, 0.0, xs))) - xs) ** 2
        return (sq * mask).sum() / mask.sum().clamp_min(1)

    return loss


def masked_row_loss(module, x: torch.Tensor) -> torch.Tensor:
    """Each row's mean squared error over its observed entries (0 with none)."""
    return module.row_loss(*observed(module, x))


class AutoencoderMissing(_MissingEntries):
    """NaN as a missing entry for :class:`~skvae.Autoencoder`."""

    def _objective(self, module, generator, masked=False):
        if not masked:
            return super()._objective(module, generator)
        # full-batch L-BFGS needs the same function at every evaluation: no
        # fresh entries to hide (and, holding out no rows, no check after)
        loss = masked_loss if self.solver == "lbfgs" else denoising_loss(generator)
        return Objective(loss, masked_row_loss)

    def _filling_model(self, module, X, generator, state, start):
        # the start's, probabilistic PCA's in the codes' units; the trained
        # weights', as _after_fit makes it (other draws)
        return state.start[1] if start else codes_gaussian(module, X, generator, masked=True)

    def _after_fit(self, X, module, generator, state):
        if not state.missing:
            return super()._after_fit(X, module, generator, state)
        if state.kept_start:  # imputes as probabilistic PCA, LinearAutoencoder's model
            return state.start[1]
        return codes_gaussian(module, X, generator, masked=True)


def _fills_better(errors: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether per-row squared errors of filled entries beat ``reference``'s by
    more than noise: by the paired mean (:func:`_significantly_better`), or,
    the mean gain positive, by how many rows gain (scipy's one-sided sign
    test, at the level of that many standard errors). A few rows that the linear start fills very
    badly on curved data widened the mean's standard error until a model
    three times better on average, and on four rows in five, did not count."""
    if _significantly_better(errors, reference):
        return True
    gains = (reference - errors)[reference != errors]
    if not len(gains) or gains.mean() <= 0:
        return False
    wins = binomtest(int((gains > 0).sum()), len(gains), alternative="greater")
    return bool(wins.pvalue < norm.sf(SIGNIFICANCE))


# ----------------------------------------------------- VariationalAutoencoder
class VAEMissing(_MissingEntries):
    """NaN as a missing entry for :class:`~skvae.VariationalAutoencoder`."""

    def __sklearn_tags__(self):
        # the other likelihoods' supports have no missing entries, nor has the
        # data with shuffled columns that "auto" reads its width off: their NaN
        # is refused (fitted, by the model's own likelihood)
        tags = super().__sklearn_tags__()
        auto = isinstance(self.n_components, str)
        tags.input_tags.allow_nan = self._likelihood_name() == "gaussian" and not auto
        return tags

    def _likelihood_name(self) -> str:
        """The likelihood that decides on NaN: the fitted model's, else the parameter."""
        module = getattr(self, "module_", None)
        return module.family.name if module is not None else self.likelihood

    def _nan_refusal(self) -> str:
        """Why NaN is refused, where the tags say it is."""
        family = self._likelihood_name()
        if family != "gaussian":
            return (
                f"VariationalAutoencoder(likelihood={family!r}) takes no missing entries "
                "(NaN): only likelihood='gaussian' reads NaN as a missing entry. Drop or "
                "fill those entries with values of the likelihood's support."
            )
        chosen = getattr(self, "n_components_", None)
        return (
            f"VariationalAutoencoder(n_components={self.n_components!r}) takes no missing "
            "entries (NaN): it calibrates its latent width on the data with each column "
            "shuffled, which would move missing entries between rows. Pass an int to "
            "fit, encode and score rows with holes"
            + (f" (this fit chose {chosen})" if chosen is not None else "")
            + "; to choose it, compare the held-out scores of a few."
        )

    def _filling_model(self, module, X, generator, state, start):
        # the prior N(0, I) and the decoder's noise, at the start pPCA's own
        k = self.n_components_
        return np.zeros(k), np.eye(k), module.family.noise_variance(float(module.scale))
