"""Comparisons of two values of a swept key across seeds (`contrast`), and the reference study's claims answered.

A contrast pairs runs that agree on the seed and on every other swept key (same seed: same initial weights and data
order), so it compares like with like and averages over the other keys; runs without a partner are left out of
the paired test, and where nothing pairs up it falls back to Welch's t-test over all runs (`stats.compare`). With
one seed per configuration the noise is unmeasured, whatever the numbers.

The reference study (lr 1e-3, 1e-4, 5e-5 × epochs 5, 10 × alexnet8, alexnet9; `experiment=seed_study`) claimed:
(a) lr 1e-4 beats 1e-3; (b) 5e-5 reaches a lower loss but a lower accuracy than 1e-4 (the loss judged here is the
final val_loss: the same split as the accuracy, where training loss would reward memorizing); (c) 5 epochs beat 10
(overfitting); (d) at lr 1e-4 and 5 epochs alexnet9 is slightly better than alexnet8. `claims` answers each with
its evidence and a verdict; a claim whose values were not run says what it needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from alexnet_sweep import names
from alexnet_sweep.report.data import Sweep, display, sort_values
from alexnet_sweep.report.runs import SEED_KEY, Configuration, RunSummary
from alexnet_sweep.report.stats import MAX_N, REAL, UNMEASURED, WITHIN_NOISE, Comparison, compare, format_p

TITLE = "The reference study's claims"
SUPPORTED, CONTRADICTED, PARTLY, NOT_TESTED = "supported", "contradicted", "partly supported", "not tested"
CLAIM_KEYS = ("optimizer.lr", "epochs", "model.name")  # a sweep varying one of them gets the claims section
ONE_SEED = "One seed per configuration: the noise is unmeasured; add seed=0,1,2 to the command to measure it."


@dataclass(frozen=True)
class Contrast:
    """Values `a` and `b` of a swept key compared on the final value of `metric`: a - b.

    Attributes:
        matched_over: The other swept keys the pairs agree on (besides the seed).
        groups: How many settings of those keys the compared runs cover (seeds per configuration = values / groups).
        left_out: Runs without a partner on the other side, left out of a paired test.
        replicated: Whether some setting has two or more seeds on a side: without, the noise is unmeasured.
    """

    key: str
    a: str
    b: str
    metric: str
    comparison: Comparison
    matched_over: tuple[str, ...]
    groups: int
    left_out: int
    replicated: bool

    @property
    def verdict(self) -> str:
        """`stats.REAL`, `stats.WITHIN_NOISE` or `stats.UNMEASURED` (always, with one seed per configuration)."""
        return self.comparison.verdict if self.replicated else UNMEASURED

    @property
    def seeds_needed(self) -> int | None:
        """Within noise: about how many seeds per configuration would resolve a difference this size (else None)."""
        needed = self.comparison.needed
        if self.verdict != WITHIN_NOISE or needed is None:
            return None
        return needed if needed > MAX_N else math.ceil(needed / self.groups)


def contrast(sweep: Sweep, key: str, a: str, b: str, metric: str = names.VAL_ACCURACY,
             where: Mapping[str, str] | None = None) -> Contrast | None:  # fmt: skip
    """Compares value `a` of `key` with value `b` (as logged) on the final `metric` of the sweep's finished runs.

    Args:
        sweep: The sweep.
        key: The swept key.
        a: One value of it, as logged.
        b: The other.
        metric: The final metric compared.
        where: Only runs with these params ({key: value}, numbers compared as numbers); these keys are not matched.

    Returns:
        The contrast, or None when a side has no finished run.
    """
    where = where or {}
    others = tuple(other for other in sweep.config_keys if other != key and other not in where)
    runs = [run for run in _scored(sweep) if metric in run.metrics and _matches(run, where)]
    sides: list[dict[tuple[str | None, ...], float]] = [{}, {}]
    for side, value in zip(sides, (a, b), strict=True):
        for run in runs:
            if run.params.get(key) == value:
                side.setdefault((*(run.params.get(k) for k in others), run.params.get(SEED_KEY)), run.metrics[metric])
    return _contrast(key, a, b, metric, sides, others)


def between(a: Configuration, b: Configuration, metric: str = names.VAL_ACCURACY) -> Contrast | None:
    """Compares two configurations on the final `metric`, paired by seed: configuration a - configuration b."""
    sides = [{(seed,): value for seed, value in config.by_seed(metric).items()} for config in (a, b)]
    return _contrast("", "a", "b", metric, sides, ())


def _contrast(key: str, a: str, b: str, metric: str, sides: list[dict], others: tuple[str, ...]) -> Contrast | None:
    if not sides[0] or not sides[1]:
        return None
    comparison = compare(*sides)
    shared = set(sides[0]) & set(sides[1]) if comparison.paired else set()
    cells = [[k[:-1] for k in side] for side in sides]  # a pairing key is (other keys' values..., seed)
    return Contrast(
        key, a, b, metric, comparison, others,
        groups=len({k[:-1] for k in shared or {*sides[0], *sides[1]}}),
        left_out=len(sides[0]) + len(sides[1]) - 2 * len(shared) if shared else 0,
        replicated=any(len(cell) > len(set(cell)) for cell in cells),
    )  # fmt: skip


def named(sweep: Sweep, found: Contrast) -> str:
    """Names the difference of a contrast of a swept key, e.g. `lr=1e-4 - lr=1e-3`."""
    short = sweep.short(found.key)
    return f"{short}={display(found.key, found.a)} - {short}={display(found.key, found.b)}"


def describe(sweep: Sweep, found: Contrast, with_noise: bool = True) -> str:
    """Words for a contrast's difference a - b: its value, its 95% interval, the test and the verdict.

    E.g. `+0.0312 (95% CI -0.0100 to +0.0720), paired t-test over 6 pairs (same seed, epochs), p = 0.14: within
    noise; about 5 seeds per configuration would resolve a difference this size`.

    Args:
        sweep: The sweep (for short key names).
        found: The contrast.
        with_noise: Whether to say that the noise is unmeasured when it has one seed per configuration (a leading
            sentence may say it once instead).

    Returns:
        The words, without the name of the difference (`named`) and without a final period.
    """
    c = found.comparison
    text = f"{c.difference:+.4f}"
    over = ", ".join(sweep.short(key) for key in found.matched_over)
    if not found.replicated:
        if c.paired and over:
            text += f" over {c.n_a} pairs (same {over})"
        return text + (" (noise unmeasured: one seed per configuration)" if with_noise else "")
    if c.verdict == UNMEASURED:
        return f"{text} (noise unmeasured: {c.reason})"
    if c.paired:
        test = f"{c.test} over {c.n_a} pairs (same seed{', ' + over if over else ''})"
    else:
        test = f"{c.test} over {c.n_a} and {c.n_b} runs"
    text += f" (95% CI {c.low:+.4f} to {c.high:+.4f}), {test}, {format_p(c.p_value)}: {c.verdict}"
    if found.left_out:
        text += f" ({found.left_out} run{'s' if found.left_out != 1 else ''} without a partner left out)"
    seeds = found.seeds_needed
    if seeds is not None:
        amount = f"more than {MAX_N}" if seeds > MAX_N else f"about {seeds}"
        text += f"; {amount} seeds per configuration would resolve a difference this size"
    return text


@dataclass(frozen=True)
class _Part:
    key: str
    a: str  # as people type it; matched to the logged value as a number where both are numbers
    b: str
    metric: str
    sign: int  # +1: the claim says a's metric is higher than b's, -1: lower


@dataclass(frozen=True)
class _Spec:
    label: str
    statement: str
    parts: tuple[_Part, ...]
    where: Mapping[str, str] = field(default_factory=dict)
    overfit: str | None = None  # epochs: count the runs with this many epochs whose val_loss was lowest earlier


_LR, _ACC, _LOSS = "optimizer.lr", names.VAL_ACCURACY, names.VAL_LOSS
SPECS = (
    _Spec("a", "lr 1e-4 beats 1e-3", (_Part(_LR, "1e-4", "1e-3", _ACC, 1),)),
    _Spec("b", "lr 5e-5 reaches a lower loss (final val_loss) but a lower accuracy than 1e-4",
          (_Part(_LR, "5e-5", "1e-4", _LOSS, -1), _Part(_LR, "5e-5", "1e-4", _ACC, -1))),
    _Spec("c", "5 epochs beat 10 (overfitting)", (_Part("epochs", "5", "10", _ACC, 1),), overfit="10"),
    _Spec("d", "alexnet9 is slightly better than alexnet8 at lr 1e-4, 5 epochs",
          (_Part("model.name", "alexnet9", "alexnet8", _ACC, 1),), {_LR: "1e-4", "epochs": "5"}),
)  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One claim of the reference study, answered.

    Attributes:
        label: "a" to "d".
        statement: The claim in words.
        verdict: `SUPPORTED`, `CONTRADICTED`, `PARTLY`, `stats.WITHIN_NOISE`, `stats.UNMEASURED` or `NOT_TESTED`.
        evidence: The numbers behind the verdict, or what the sweep needs to test it.
        contrasts: The contrasts it was judged by (empty when not tested).
    """

    label: str
    statement: str
    verdict: str
    evidence: str
    contrasts: tuple[Contrast, ...] = ()

    @property
    def line(self) -> str:
        """The claim in one line: `(a) lr 1e-4 beats 1e-3: supported. final val_accuracy 1e-4 - 1e-3: ...`."""
        verdict = {
            CONTRADICTED: "contradicted (the opposite is a real difference)",
            UNMEASURED: "noise unmeasured (one seed)" if not all(c.replicated for c in self.contrasts) else UNMEASURED,
        }.get(self.verdict, self.verdict)
        if self.verdict == NOT_TESTED:
            return f"({self.label}) {self.statement}: **{NOT_TESTED}**: {self.evidence}."
        return f"({self.label}) {self.statement}: **{verdict}**. {self.evidence}"


def claims(sweep: Sweep) -> list[Claim]:
    """Answers the reference study's claims from a sweep; none when it varies none of lr, epochs, model.name."""
    if not any(key in sweep.varying_keys for key in CLAIM_KEYS):
        return []
    return [_answer(sweep, spec) for spec in SPECS]


def claims_section(sweep: Sweep) -> list[str]:
    """Returns the Markdown lines of the section `## The reference study's claims`, or [] when it does not apply."""
    answered = claims(sweep)
    if not answered:
        return []
    lead = "Each claim with its evidence from this sweep: differences a - b of final values, paired by seed and the "
    lead += "other swept keys." + ("" if sweep.replicated else f" {ONE_SEED}")
    return [f"## {TITLE}", "", lead, "", *(f"- {claim.line}" for claim in answered), ""]


def _answer(sweep: Sweep, spec: _Spec) -> Claim:
    scored = _scored(sweep)
    runs = [run for run in scored if _matches(run, spec.where)]
    needs = {key: [value] for key, value in spec.where.items() if not any(_matches(r, {key: value}) for r in scored)}
    for part in spec.parts:
        if any(_logged(runs, part.key, value) is None for value in (part.a, part.b)):
            needs.setdefault(part.key, [part.a, part.b])
    if needs:
        wanted = " ".join(f"{key.removesuffix('.name')}={','.join(sort_values(v))}" for key, v in needs.items())
        return Claim(spec.label, spec.statement, NOT_TESTED, f"needs {wanted}")
    found, verdicts, evidence = [], [], []
    for part in spec.parts:
        a, b = _logged(runs, part.key, part.a), _logged(runs, part.key, part.b)
        result = contrast(sweep, part.key, a, b, part.metric, spec.where)
        found.append(result)
        verdicts.append(_part_verdict(result, part.sign))
        evidence.append(f"final {part.metric} {named(sweep, result)}: {describe(sweep, result, with_noise=False)}")
        if result.verdict == UNMEASURED:
            way = "the claimed way" if result.comparison.difference * part.sign > 0 else "the other way"
            evidence[-1] += f", {way}"
    if spec.overfit is not None:
        many = [run for run in runs if _same(run.params.get("epochs"), spec.overfit)]
        early = sum(run.best_epoch is not None and run.best_epoch < run.last_epoch for run in many)
        evidence.append(f"val_loss lowest before the last epoch in {early} of {len(many)} epochs={spec.overfit} runs")
    where = ", ".join(f"{key.removesuffix('.name')}={value}" for key, value in spec.where.items())
    text = ("At " + where + ": " if where else "") + "; ".join(evidence) + "."
    return Claim(spec.label, spec.statement, _combine(verdicts), text[0].upper() + text[1:], tuple(found))


def _part_verdict(found: Contrast, sign: int) -> str:
    if found.verdict == REAL:
        return SUPPORTED if found.comparison.difference * sign > 0 else CONTRADICTED
    return found.verdict


def _combine(verdicts: list[str]) -> str:
    if len(set(verdicts)) == 1:
        return verdicts[0]
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return PARTLY if SUPPORTED in verdicts else WITHIN_NOISE if WITHIN_NOISE in verdicts else UNMEASURED


def _scored(sweep: Sweep) -> list[RunSummary]:
    """The runs comparisons use: finished, with a final val_accuracy (as ranked)."""
    return [run for run in sweep.finished if run.val_accuracy is not None]


def _same(logged: str | None, wanted: str) -> bool:
    """Whether a logged param value is `wanted`: as numbers where both are numbers (`0.0001` is `1e-4`)."""
    if logged is None:
        return False
    try:
        return math.isclose(float(logged), float(wanted), rel_tol=1e-9)
    except ValueError:
        return logged == wanted


def _matches(run: RunSummary, where: Mapping[str, str]) -> bool:
    return all(_same(run.params.get(key), value) for key, value in where.items())


def _logged(runs: list[RunSummary], key: str, wanted: str) -> str | None:
    """The logged value of `key` that is `wanted`, among the runs (None if no run has it)."""
    return next((run.params[key] for run in runs if _same(run.params.get(key), wanted)), None)
