"""One Optuna study per tuning job, rebuilt from the job's own record.

The study lives in memory only (no Optuna RDB tables). What it has learnt is in the tuning
job's document: every trial's parameters, state, intermediate and final objective values,
and the warm-start parents' trials. ``build_study`` replays them with ``add_trial``
(finished trials) and ``enqueue_trial`` + ``ask`` (trials still running), so a restarted
server goes on from where it was without running a finished trial again.

Samplers:

- ``Bayesian``: TPE (``TPESampler``, multivariate, grouped for the conditional spaces of
  multi-algorithm jobs, with the constant liar so parallel trials do not propose the same
  point). Optuna's GP sampler needs PyTorch, which modelyard does not ship; TPE models
  integer, log-scaled and categorical parameters natively, costs milliseconds per
  proposal, and is what Optuna pairs with Hyperband. Its random start-up phase is shortened
  to a quarter of the budget (2-10 trials), as tuning budgets are small. On
  ``bench/tuning.py`` (XGBoost, six hyperparameters, 30 trials, 20 seeds) it reaches Random
  search's final best in 0.43 of the trials on scikit-learn's digits and 0.50-0.55 on
  breast cancer, where the best losses differ by thousandths. (Compared offline on breast
  cancer over 30 seeds: 5 or 10 start-up trials, a scrambled Sobol start-up, and a
  scikit-learn Gaussian-process EI sampler were all within noise of this.)
- ``Random``: ``RandomSampler``.
- ``Grid``: ``GridSampler`` over the categorical values; it hands trial *k* the *k*-th
  point of a grid shuffled by the seed, so a replayed study continues the same order.
- ``Hyperband``: TPE proposals with ``HyperbandPruner`` stopping trials on their
  intermediate objective values (one step per value the job emits, e.g. per epoch).

Reproducibility: the samplers are seeded with ``RandomSeed`` (or one drawn at creation
and kept). After a restart a Random or Bayesian study is re-seeded with the seed and the
number of trials already launched, so it does not propose its first points again.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution,
)
from optuna.trial import Trial, TrialState, create_trial

from .space import DEFINITION_PARAM, Range

optuna.logging.set_verbosity(optuna.logging.WARNING)
# multivariate / group / constant_liar are marked experimental; they are what is wanted here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
log = logging.getLogger("modelyard.tuning")


@dataclass
class Space:
    """The whole search space of one tuning job: its definitions' ranges."""

    definitions: dict[str | None, list[Range]]  # definition name (None: single) -> ranges

    @property
    def multi(self) -> bool:
        return len(self.definitions) > 1 or next(iter(self.definitions)) is not None

    def ranges(self, definition: str | None) -> list[Range]:
        return self.definitions[definition]

    def distributions_for(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        """The distributions of the parameters one trial has."""
        found: dict[str, BaseDistribution] = {}
        if self.multi:
            found[DEFINITION_PARAM] = CategoricalDistribution(list(self.definitions))
        for ranges in self.definitions.values():
            for item in ranges:
                if item.key in params:
                    found[item.key] = item.distribution
        return found


@dataclass
class Search:
    """A tuning job's study and its trials still running (Optuna number -> Trial)."""

    study: optuna.Study
    space: Space
    live: dict[int, Trial] = field(default_factory=dict)
    reported: dict[int, int] = field(default_factory=dict)  # trial -> steps reported

    def propose(self) -> tuple[int, str | None, dict[str, Any]]:
        """Ask for the next trial: (Optuna number, definition, Optuna params)."""
        trial = self.study.ask()
        definition: str | None = None
        if self.space.multi:
            definition = trial.suggest_categorical(DEFINITION_PARAM, list(self.space.definitions))
        for item in self.space.ranges(definition):
            suggest(trial, item.key, item.distribution)
        self.live[trial.number] = trial
        return trial.number, definition, dict(trial.params)

    def report(self, number: int, values: list[float]) -> bool:
        """Report new intermediate values; True if the pruner says stop the trial."""
        trial = self.live.get(number)
        if trial is None:
            return False
        done = self.reported.get(number, 0)
        for step in range(done, len(values)):
            trial.report(values[step], step + 1)
        self.reported[number] = len(values)
        return len(values) > done and trial.should_prune()

    def finish(self, number: int, state: str, value: float | None) -> None:
        """Tell the study a trial's outcome: "complete", "pruned" or "fail"."""
        trial = self.live.pop(number, None)
        self.reported.pop(number, None)
        if trial is None:
            return
        if state == "complete" and value is not None:
            self.study.tell(trial, value)
        elif state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its ``study.stop()`` once the grid is exhausted: that
    only works inside ``study.optimize``; the tuning loop stops at the grid size itself."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Any) -> None:
        return None


def derived_seed(seed: int, launched: int) -> int:
    if launched == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{launched}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(strategy: str, seed: int, launched: int, budget: int,
                 space: Space) -> optuna.samplers.BaseSampler:
    if strategy == "Grid":
        grid = {item.key: list(item.distribution.choices)  # type: ignore[attr-defined]
                for item in space.ranges(None)}
        return _GridSampler(grid, seed=seed)
    seeded = derived_seed(seed, launched)
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seeded)
    startup = max(2, min(10, budget // 4))
    return optuna.samplers.TPESampler(
        seed=seeded, n_startup_trials=startup, multivariate=True, group=space.multi,
        constant_liar=True)


def build_study(name: str, config: dict[str, Any], space: Space, seed: int,
                seeds: list[dict[str, Any]], trials: list[dict[str, Any]],
                hyperband: tuple[int, int] | None) -> Search:
    """The study of a tuning job, with its parents' and its own trials replayed.

    ``seeds``: warm-start trials ({Params, Objective}); ``trials``: the job's trial records
    (one per training job, retries share their ``Trial`` number), in launch order.
    """
    objective = config.get("HyperParameterTuningJobObjective", {})
    direction = "minimize" if objective.get("Type") == "Minimize" else "maximize"
    own = _logical_trials(trials)
    strategy = config["Strategy"]
    budget = config["ResourceLimits"].get("MaxNumberOfTrainingJobs", len(own) or 1)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if hyperband is not None:
        pruner = optuna.pruners.HyperbandPruner(min_resource=hyperband[0],
                                                max_resource=hyperband[1])
    # Named by the seed, not the job: Hyperband assigns brackets by hashing the study name
    # with the trial number, so the same RandomSeed gives the same brackets.
    study = optuna.create_study(
        study_name=f"tuning-{seed}", direction=direction, pruner=pruner,
        sampler=make_sampler(strategy, seed, len(own), budget, space))
    search = Search(study, space)
    if strategy != "Grid":
        for parent in seeds:
            _add_finished(study, space, parent["Params"], "complete", parent["Objective"], [])
    for number, record in own:
        state = _final_state(record)
        if state is None:
            study.enqueue_trial(record["Params"], skip_if_exists=False)
            trial = study.ask(space.distributions_for(record["Params"]))
            search.live[trial.number] = trial
            values = record.get("Intermediate", [])
            for step, value in enumerate(values):
                trial.report(value, step + 1)
            search.reported[trial.number] = len(values)
            record_number = trial.number
        else:
            record_number = _add_finished(study, space, record["Params"], state,
                                          record.get("Objective"), record.get("Intermediate", []))
        if record_number != number:
            log.warning("tuning job %s: trial %s replayed as %s", name, number, record_number)
    return search


def _logical_trials(trials: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Each Optuna trial once, as its latest training job (attempt) records it."""
    latest: dict[int, dict[str, Any]] = {}
    for record in trials:
        latest[record["Trial"]] = record
    return sorted(latest.items())


def _final_state(record: dict[str, Any]) -> str | None:
    """How the study saw a trial end; None while it runs (or waits for a retry)."""
    return record.get("StudyState")


def _add_finished(study: optuna.Study, space: Space, params: dict[str, Any], state: str,
                  value: float | None, intermediate: list[float]) -> int:
    distributions = space.distributions_for(params)
    params = {key: value for key, value in params.items() if key in distributions}
    if not all(contains(distributions[key], item) for key, item in params.items()):
        return -1  # a parent's value outside this job's ranges: it cannot inform them
    try:
        if state == "complete" and value is not None:
            frozen = create_trial(params=params, distributions=distributions, value=value,
                                  intermediate_values=dict(enumerate(intermediate, 1)))
        elif state == "pruned":
            frozen = create_trial(params=params, distributions=distributions,
                                  state=TrialState.PRUNED,
                                  intermediate_values=dict(enumerate(intermediate, 1)))
        else:
            frozen = create_trial(params=params, distributions=distributions,
                                  state=TrialState.FAIL)
    except ValueError:
        return -1
    study.add_trial(frozen)
    return len(study.get_trials(deepcopy=False)) - 1


def suggest(trial: Trial, key: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(key, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(key, distribution.low, distribution.high, log=distribution.log)
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(key, distribution.choices)


def contains(distribution: BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, (IntDistribution, FloatDistribution)):
        return isinstance(value, (int, float)) and distribution.low <= value <= distribution.high
    assert isinstance(distribution, CategoricalDistribution)
    return value in distribution.choices
