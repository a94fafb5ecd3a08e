"""Run scenarios against real sites: set up, play the steps, decide every expectation.

One scenario run (:func:`run_scenario`, async):

1. start the :class:`~bench.scenario.probe.Probe` on every site, then the scenario's fleet,
   and wait until the backend of each device's site has registered it (so step one cannot
   race a booting node);
2. create the grants;
3. play the steps in file order: wait for ``at``/``after``, do the action, then evaluate
   the step's expectations against the timeline as it grows, until each is decided;
4. clean up whatever the scenario changed (grants revoked, stopped services restarted,
   fleet stopped) so the next scenario can share the bench.

:class:`BenchPool` keeps one bench running for consecutive scenarios whose sites have the
same settings, which is what keeps the shipped suite fast. Files are found, selected,
ordered and reported by pytest with the plugin (:mod:`bench.pytest_plugin`);
``aurora-bench run`` is a front for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from bench.errors import BenchError
from bench.eventually import NotYet, eventually
from bench.scenario.checks import Check, LatencyExpect, MetricExpect
from bench.scenario.expectations import Context, Outcome, Verdict, deadline, describe, evaluate
from bench.scenario.fleet_adapter import start_fleet
from bench.scenario.loader import LoadedScenario
from bench.scenario.perform import Stage, StepError, perform
from bench.scenario.probe import Probe, ProbeIdentity
from bench.scenario.results import ExpectationResult, ScenarioResult, StepResult
from bench.scenario.schema import Scenario, Step
from bench.scenario.sentinel_probe import SentinelProbe
from bench.scenario.site_client import SiteClient
from bench.scenario.timeline import Event, EventKind, Timeline
from bench.scenario.wan_action import checked_conditions
from bench.scenario.wan_perform import heal_wan
from bench.site import BenchOptions, RunningBench, start_bench

#: How often pending expectations are re-evaluated while the timeline grows.
EVALUATE_EVERY_S = 0.02
#: How long a fleet may take to boot and be registered by its site's backend.
REGISTER_TIMEOUT_S = 20.0
#: Metric names with this prefix are federation counters of ``/api/v1/system/topology``.
FEDERATION_COUNTER = "federation_"
#: How often pending metric expectations read /metrics.
METRIC_SAMPLE_S = 0.1


def metric_sums(text: str, bodies: Sequence[MetricExpect]) -> list[float]:
    """For each expectation, the sum of the samples of its name whose labels include its own."""
    sums = [0.0] * len(bodies)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for index, body in enumerate(bodies):
                if sample.name == body.name and all(
                    sample.labels.get(key) == value for key, value in body.labels.items()
                ):
                    sums[index] += float(sample.value)
    return sums


def expectation_kind(body: object) -> str:
    """The YAML key of an expectation model: ``NoAlertExpect`` -> ``no_alert``."""
    name = type(body).__name__.removesuffix("Expect")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class RunObserver(Protocol):
    """Progress callbacks (console progress, demo narration). All optional in spirit."""

    def scenario_started(self, loaded: LoadedScenario) -> None: ...
    def step_started(self, step: Step, index: int, t: float) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def event(self, event: Event) -> None: ...
    def scenario_finished(self, result: ScenarioResult) -> None: ...


class NullObserver:
    """Observes nothing."""

    def scenario_started(self, loaded: LoadedScenario) -> None:
        """Nothing."""

    def step_started(self, step: Step, index: int, t: float) -> None:
        """Nothing."""

    def step_finished(self, result: StepResult) -> None:
        """Nothing."""

    def event(self, event: Event) -> None:
        """Nothing."""

    def scenario_finished(self, result: ScenarioResult) -> None:
        """Nothing."""


# ---------------------------------------------------------------- bench pool


class BenchPool:
    """Shares one running bench between consecutive scenarios with the same sites.

    Only one bench lives at a time (this machine has two cores): asking for a different
    configuration stops the current bench first.
    """

    def __init__(self, state_dir: Path, db: str = "sqlite") -> None:
        self.root = Path(state_dir)
        self._db = db
        self._key: str | None = None
        self._bench: RunningBench | None = None
        self._count = 0
        self.started = 0
        # Benches of an earlier run are gone; their directories (logs) are kept until now.
        if self.root.is_dir():
            for old in self.root.glob("bench-*"):
                shutil.rmtree(old, ignore_errors=True)

    def acquire(self, scenario: Scenario) -> RunningBench:
        """A bench with the scenario's sites and settings (started if needed)."""
        key = scenario.bench_key()
        if self._bench is not None and key == self._key:
            return self._bench
        self.close()
        self._count += 1
        state_dir = self.root / f"bench-{self._count}"
        state_dir.mkdir(parents=True, exist_ok=True)
        site_env = {site: spec.env() for site, spec in scenario.sites.items()}
        self._bench = start_bench(
            BenchOptions(
                sites=list(scenario.sites),
                state_dir=state_dir,
                # Sites across an emulated WAN keep SQLite: the one PostgreSQL cluster
                # listens in the root namespace, not in the sites' (bench/site_options.py).
                db="sqlite" if scenario.wan is not None else self._db,
                site_env=site_env,
                sentinel=scenario.sentinel,
                wan=checked_conditions(scenario.wan) if scenario.wan is not None else None,
            )
        )
        self._key = key
        self.started += 1
        return self._bench

    def close(self) -> None:
        """Stop the current bench, if any."""
        bench, self._bench, self._key = self._bench, None, None
        if bench is not None:
            bench.close()


# ---------------------------------------------------------------- one scenario


class _Run:
    """The state of one scenario run."""

    def __init__(
        self,
        loaded: LoadedScenario,
        bench: RunningBench,
        observer: RunObserver,
        pace_s: float = 0.0,
        on_interrupt: Callable[[ScenarioResult], None] | None = None,
    ) -> None:
        self.pace_s = pace_s
        self.on_interrupt = on_interrupt
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.bench = bench
        self.observer = observer
        self.timeline = Timeline()
        self.timeline.listen(observer.event)
        self.stage = Stage(self.scenario, bench, self.timeline, sites={})
        self.t0 = 0.0
        #: What has run so far: the partial result when the run is interrupted.
        self.result = ScenarioResult(
            self.scenario.name,
            str(loaded.path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    # -------------------------------------------------------------- setup / cleanup

    async def setup(self) -> None:
        stage = self.stage
        for site_id in self.scenario.sites:
            stage.sites[site_id] = SiteClient(self.bench.info.site(site_id))
        probe_cert = self.bench.probe_cert()
        stage.probe = Probe(
            {site: self.bench.info.site(site) for site in self.scenario.sites},
            ProbeIdentity(self.bench.pki.ca_cert, probe_cert.cert, probe_cert.key),
            self.timeline,
        )
        await stage.probe.start()
        if self.scenario.sentinel:
            stage.sentinel = SentinelProbe(self.bench, self.timeline, self.scenario.first_site)
            await stage.sentinel.start()
        if self.scenario.fleet:
            stage.fleet = await start_fleet(self.scenario, self.bench, self.timeline)
            await self._await_registration()
        for grant in self.scenario.grants:
            await perform(grant, stage)

    async def _await_registration(self) -> None:
        # A node is ready once its site's backend has processed a status from it in this
        # run (the audit entry comes after the store write); an old row in the database
        # of a shared bench does not count, and a node still in its boot delay would not
        # act on commands yet.
        wanted = {(self.stage.site_of(node.site), node.id) for node in self.scenario.fleet}

        def missing() -> set[tuple[str, str]]:
            seen = {
                (e.site, e.device)
                for e in self.timeline
                if e.kind is EventKind.AUDIT and e.get("type") == "device_status"
            }
            return wanted - seen

        try:
            await eventually(
                lambda: not missing(), "registration", REGISTER_TIMEOUT_S, interval_s=0.02
            )
        except NotYet:
            names = ", ".join(f"{d}@{s}" for s, d in sorted(missing()))
            raise StepError(
                f"the backend did not register {names} within {REGISTER_TIMEOUT_S:g}s "
                "of the fleet starting (is the site's backend running?)"
            ) from None

    async def cleanup(self) -> None:
        stage = self.stage
        errors: list[str] = []
        if stage.fleet is not None:
            with contextlib.suppress(Exception):
                await stage.fleet.aclose()
        for (site, service), stopped in list(stage.stopped.items()):
            if stopped:
                try:
                    await stage.start_service(site, service)
                except Exception as error:
                    errors.append(f"restarting {service} of {site}: {error}")
        try:
            await heal_wan(stage)
        except BenchError as error:
            errors.append(f"restoring the WAN link: {error}")
        for site, grant_id in stage.grants:
            with contextlib.suppress(BenchError):
                await stage.api(site).revoke(grant_id)
        if stage.sentinel is not None:
            for region in sorted(stage.sentinel.killed):
                try:
                    await asyncio.to_thread(self.bench.sentinel.start_node, region)  # type: ignore[union-attr]
                except Exception as error:
                    errors.append(f"restarting Sentinel node {region}: {error}")
            await stage.sentinel.aclose()
        await stage.token_clients.aclose()
        if stage.probe is not None:
            await stage.probe.aclose()
        for client in stage.sites.values():
            await client.aclose()
        if errors:
            raise BenchError("; ".join(errors))

    # -------------------------------------------------------------- metrics

    async def sample_metrics(self, bodies: Iterable[Check]) -> None:
        """Record the current value of every counter a metric expectation names."""
        # federation_* counters come from the topology endpoint, sampled by the probe.
        by_site: dict[str, list[MetricExpect]] = {}
        for body in bodies:
            if isinstance(body, MetricExpect) and not body.name.startswith(FEDERATION_COUNTER):
                by_site.setdefault(body.site or self.scenario.first_site, []).append(body)
        for site, wanted in by_site.items():
            text = await self.stage.api(site).metrics_text()
            if text is None:
                continue  # backend down on purpose: no sample, the bound decides
            for body, value in zip(wanted, metric_sums(text, wanted), strict=True):
                self.timeline.record(
                    EventKind.METRIC, "runner", site=site, name=body.name,
                    labels=dict(body.labels), value=value,
                )  # fmt: skip

    # -------------------------------------------------------------- steps

    async def run_step(self, step: Step, index: int, previous_end: float) -> StepResult:
        clock = self.timeline.clock
        begin = self.t0 + step.at if step.at is not None else previous_end + (step.after or 0.0)
        delay = begin - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.pace_s > 0 and index > 0:
            await asyncio.sleep(self.pace_s)  # the demo's pace, so a person can follow
        started = clock()
        self.observer.step_started(step, index, started)
        self.timeline.record(EventKind.STEP, "runner", phase="start", name=step.name, index=index)
        result = StepResult(step.name, step.action_key, started)
        bodies = [item.body for item in step.expect]
        if any(isinstance(body, MetricExpect) for body in bodies):
            await self.sample_metrics(bodies)
        try:
            action = step.action
            result.detail = "" if action is None else await perform(action, self.stage)
        except BenchError as error:  # StepError included
            result.error = str(error)
        except Exception as error:
            result.error = f"{type(error).__name__}: {error}"
        # Expectations count from when the action began: a bound includes its own action.
        result.action_s = clock() - started
        if result.error is None:
            result.expectations = await self.decide(bodies, started)
        result.ended = clock()
        self.timeline.record(
            EventKind.STEP, "runner", phase="end", name=step.name, index=index,
            passed=result.passed,
        )  # fmt: skip
        self.observer.step_finished(result)
        return result

    async def decide(self, bodies: Sequence[Check], start: float) -> list[ExpectationResult]:
        fleet = self.stage.fleet
        context = Context(node_devices=fleet.node_devices if fleet else frozenset())
        pending = dict(enumerate(bodies))
        decided: dict[int, ExpectationResult] = {}
        last_sample = start
        while pending:
            now = self.timeline.clock()
            # Latency checks look back over what happened: decide them after the step's
            # other expectations, which wait for the events to arrive.
            waiting = any(not isinstance(b, LatencyExpect) for b in pending.values())
            for index, body in list(pending.items()):
                if waiting and isinstance(body, LatencyExpect):
                    continue
                outcome = evaluate(body, self.timeline, start, now, context)
                if outcome.verdict is Verdict.PENDING:
                    continue
                del pending[index]
                decided[index] = self._decided(body, outcome, start, now)
            if pending:
                metric_pending = [b for b in pending.values() if isinstance(b, MetricExpect)]
                if metric_pending and now - last_sample >= METRIC_SAMPLE_S:
                    last_sample = now
                    await self.sample_metrics(metric_pending)
                soonest = min(deadline(b, start) for b in pending.values())
                await asyncio.sleep(min(EVALUATE_EVERY_S, max(0.0, soonest - now) + 0.001))
        return [decided[index] for index in sorted(decided)]

    def _decided(
        self, body: Check, outcome: Outcome, start: float, now: float
    ) -> ExpectationResult:
        at = outcome.at if outcome.at is not None else now
        return ExpectationResult(
            description=describe(body),
            kind=expectation_kind(body),
            verdict=outcome.verdict,
            expected=outcome.expected,
            observed=outcome.observed,
            at=outcome.at,
            latency_s=outcome.latency_s if outcome.verdict is Verdict.PASSED else None,
            figures=dict(outcome.figures),
            context=(
                self.timeline.around(at, before_s=max(2.0, at - start), after_s=1.0)
                if outcome.verdict is Verdict.FAILED
                else []
            ),
        )

    async def play(self) -> ScenarioResult:
        result = self.result
        self.observer.scenario_started(self.loaded)
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.scenario.timeout):
                try:
                    await self.setup()
                    self.t0 = self.timeline.clock()
                    end = self.t0
                    for index, step in enumerate(self.scenario.steps):
                        step_result = await self.run_step(step, index, end)
                        result.steps.append(step_result)
                        end = step_result.ended
                        if step_result.error is not None:
                            break
                finally:
                    await self.cleanup()
        except TimeoutError:
            result.error = (
                f"the scenario did not finish within its timeout of {self.scenario.timeout:g}s"
            )
        except BenchError as error:  # StepError included
            result.error = str(error)
        except asyncio.CancelledError:
            # Ctrl-C: keep what ran for the partial report, then stop as asked.
            result.error = "interrupted before it finished"
            self._finish(result, began)
            if self.on_interrupt is not None:
                self.on_interrupt(result)
            raise
        self._finish(result, began)
        self.observer.scenario_finished(result)
        return result

    def _finish(self, result: ScenarioResult, began: float) -> None:
        if result.error is not None:
            result.error_context = list(self.timeline)[-25:]
        result.duration_s = time.monotonic() - began
        result.events = list(self.timeline)


async def run_scenario(
    loaded: LoadedScenario,
    bench: RunningBench,
    observer: RunObserver | None = None,
    *,
    pace_s: float = 0.0,
    partial: Callable[[ScenarioResult], None] | None = None,
) -> ScenarioResult:
    """Run one scenario against ``bench`` (which must have the scenario's sites).

    ``pace_s`` waits that long before every step after the first (the demo's pace).
    When the run is cancelled (Ctrl-C), ``partial`` gets what ran so far.
    """
    missing = [site for site in loaded.scenario.sites if site not in bench.info.sites]
    if missing:
        raise BenchError(f"{loaded.path}: the bench does not run site(s) {', '.join(missing)}")
    return await _Run(loaded, bench, observer or NullObserver(), pace_s, partial).play()


# ---------------------------------------------------------------- ordering


_T = TypeVar("_T")


def group_by_bench(items: Sequence[_T], scenario_of: Callable[[_T], Scenario]) -> list[_T]:
    """``items`` ordered so that those whose scenarios share a bench run one after another.

    Stable; the pytest plugin orders its items with it (and so ``aurora-bench run``).
    """
    order: dict[str, int] = {}
    for item in items:
        order.setdefault(scenario_of(item).bench_key(), len(order))
    return sorted(items, key=lambda item: order[scenario_of(item).bench_key()])
