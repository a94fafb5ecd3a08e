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
same settings, which is what keeps the shipped suite fast. :func:`run_files` is the
``aurora-bench run`` driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiomqtt
import httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

from bench.errors import BenchError
from bench.scenario.expectations import Context, Verdict, deadline, describe, evaluate
from bench.scenario.fleet_adapter import ScenarioFleet, start_fleet
from bench.scenario.loader import (
    LoadedScenario,
    ScenarioLoadError,
    iter_scenario_files,
    load_scenario,
)
from bench.scenario.probe import Probe, ProbeIdentity
from bench.scenario.results import ExpectationResult, ScenarioResult, StepResult
from bench.scenario.schema import (
    AttestAction,
    Expectation,
    GrantSpec,
    MetricExpect,
    OperatorCommandAction,
    PartitionAction,
    PublishAction,
    RaiseAlertAction,
    ReplayAction,
    RevokeAction,
    Scenario,
    ServiceAction,
    Step,
)
from bench.scenario.select import compile_selection, names_of
from bench.scenario.timeline import Event, EventKind, Timeline
from bench.site import BenchOptions, RunningBench, start_bench
from simulators.mqtt_link import device_tls_context

#: How often pending expectations are re-evaluated while the timeline grows.
EVALUATE_EVERY_S = 0.02
#: How long a fleet may take to boot and be registered by its site's backend.
REGISTER_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 10.0
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


class StepError(BenchError):
    """An action could not be done (HTTP error, unknown device, service did not start)."""


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
                sites=list(scenario.sites), state_dir=state_dir, db=self._db, site_env=site_env
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
    ) -> None:
        self.pace_s = pace_s
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.bench = bench
        self.observer = observer
        self.timeline = Timeline()
        self.timeline.listen(observer.event)
        self.http: dict[str, httpx.AsyncClient] = {}
        self.probe: Probe | None = None
        self.fleet: ScenarioFleet | None = None
        self.grants: list[tuple[str, str]] = []  # (site, grant id)
        self.stopped: dict[tuple[str, str], bool] = {}  # (site, service) -> was stopped
        self.t0 = 0.0

    def site_of(self, site: str | None, device: str | None = None) -> str:
        if site is not None:
            return site
        return self.scenario.site_of(device) if device else self.scenario.first_site

    def note(self, text: str, site: str | None = None, device: str | None = None) -> None:
        self.timeline.record(EventKind.NOTE, "runner", site=site, device=device, text=text)

    def action(
        self,
        kind: str,
        site: str | None = None,
        device: str | None = None,
        at: float | None = None,
        **data: Any,
    ) -> None:
        """Record what an action did; ``at``: when it was sent (its effects may come first)."""
        self.timeline.record(
            EventKind.ACTION, "runner", site=site, device=device, t=at, action=kind, **data
        )

    # -------------------------------------------------------------- setup / cleanup

    async def setup(self) -> None:
        for site_id in self.scenario.sites:
            self.http[site_id] = self.bench.info.site(site_id).api_client(timeout=HTTP_TIMEOUT_S)
        probe_cert = self.bench.probe_cert()
        self.probe = Probe(
            {site: self.bench.info.site(site) for site in self.scenario.sites},
            ProbeIdentity(self.bench.pki.ca_cert, probe_cert.cert, probe_cert.key),
            self.timeline,
        )
        await self.probe.start()
        if self.scenario.fleet:
            self.fleet = await start_fleet(self.scenario, self.bench, self.timeline)
            await self._await_registration()
        for grant in self.scenario.grants:
            await self.do_grant(grant)

    async def _await_registration(self) -> None:
        # A node is ready once its site's backend has processed a status from it in this
        # run (the audit entry comes after the store write); an old row in the database
        # of a shared bench does not count, and a node still in its boot delay would not
        # act on commands yet.
        wanted = {(self.site_of(node.site), node.id) for node in self.scenario.fleet}
        limit = time.monotonic() + REGISTER_TIMEOUT_S
        while True:
            seen = {
                (e.site, e.device)
                for e in self.timeline
                if e.kind is EventKind.AUDIT and e.get("type") == "device_status"
            }
            missing = wanted - seen
            if not missing:
                return
            if time.monotonic() > limit:
                names = ", ".join(f"{d}@{s}" for s, d in sorted(missing))
                raise StepError(
                    f"the backend did not register {names} within {REGISTER_TIMEOUT_S:g}s "
                    "of the fleet starting (is the site's backend running?)"
                )
            await asyncio.sleep(0.02)

    async def cleanup(self) -> None:
        errors: list[str] = []
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await self.fleet.aclose()
        for (site, service), stopped in list(self.stopped.items()):
            if stopped:
                try:
                    await self._start_service(site, service)
                except Exception as error:
                    errors.append(f"restarting {service} of {site}: {error}")
        for site, grant_id in self.grants:
            with contextlib.suppress(httpx.HTTPError):
                await self.http[site].delete(f"/api/v1/cps/access/grants/{grant_id}")
        if self.probe is not None:
            await self.probe.aclose()
        for client in self.http.values():
            await client.aclose()
        if errors:
            raise BenchError("; ".join(errors))

    # -------------------------------------------------------------- HTTP

    async def call(
        self, site: str, method: str, path: str, body: Any = None, expect: int | None = None
    ) -> Any:
        try:
            response = await self.http[site].request(method, path, json=body)
        except httpx.HTTPError as error:
            raise StepError(
                f"{method} {path} at site {site}: {type(error).__name__}: {error}"
            ) from None
        if response.status_code >= 400 or (expect is not None and response.status_code != expect):
            raise StepError(
                f"{method} {path} at site {site} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    # -------------------------------------------------------------- actions

    async def do_grant(self, grant: GrantSpec) -> None:
        site = self.site_of(grant.site)
        body = {"uid": grant.uid, "device_ids": list(grant.doors)}
        created = await self.call(site, "POST", "/api/v1/cps/access/grants", body)
        grant_id = str(created.get("id")) if isinstance(created, dict) else ""
        self.grants.append((site, grant_id))
        self.action("grant", site, uid=grant.uid, doors=list(grant.doors), id=grant_id)

    async def do_revoke(self, action: RevokeAction) -> str:
        site = self.site_of(action.site)
        listed = await self.call(site, "GET", "/api/v1/cps/access/grants")
        items = listed.get("items", []) if isinstance(listed, dict) else []
        revoked = [
            str(g["id"]) for g in items if str(g.get("uid", "")).upper() == action.uid.upper()
        ]
        if not revoked:
            raise StepError(f"no grant of uid {action.uid} at site {site} to revoke")
        for grant_id in revoked:
            await self.call(site, "DELETE", f"/api/v1/cps/access/grants/{grant_id}")
        self.action("revoke", site, uid=action.uid, ids=revoked)
        return f"{len(revoked)} grant(s)"

    async def do_raise_alert(self, action: RaiseAlertAction) -> str:
        site = self.site_of(action.site, action.device)
        ids = []
        for _ in range(action.count):
            body: dict[str, Any] = {
                "type": action.type,
                "severity": action.severity.value,
                "title": action.title,
                "iocs": list(action.iocs),
            }
            if action.device is not None:
                body["device_id"] = action.device
            sent = self.timeline.clock()
            created = await self.call(site, "POST", "/api/v1/alerts", body)
            alert_id = created.get("id") if isinstance(created, dict) else None
            ids.append(alert_id)
            self.action(
                "raise_alert", site, action.device, at=sent, type=action.type,
                severity=action.severity.value, id=alert_id,
            )  # fmt: skip
        return f"{action.count} x {action.type} at {site}"

    async def do_publish(self, action: PublishAction) -> str:
        site = self.site_of(action.site, action.as_device)
        payload = action.body()
        for _ in range(action.count):
            if action.as_device is None:
                assert self.probe is not None
                await self.probe.publish(site, action.topic, payload, qos=action.qos)
            else:
                await self._publish_as(site, action.as_device, action.topic, payload, action.qos)
        who = action.as_device or "probe"
        self.action(
            "publish", site, action.as_device, topic=action.topic, size=len(payload), who=who
        )
        return f"{action.count} x {len(payload)} bytes on {action.topic} as {who}"

    async def _publish_as(
        self, site: str, device: str, topic: str, payload: bytes, qos: int
    ) -> None:
        pair = self.bench.pki.device(device)
        context = device_tls_context(self.bench.pki.ca_cert, pair.cert, pair.key)
        endpoint = self.bench.info.site(site).mqtt
        async with aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=f"{device}-scenario-publish",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=context,
        ) as client:
            await client.publish(topic, payload, qos=qos)

    async def do_attest(self, action: AttestAction) -> str:
        site = self.site_of(None, action.device)
        if action.respond != "honest":
            if self.fleet is None or not self.fleet.has(action.device):
                raise StepError(f"`respond: {action.respond}` needs {action.device} in the fleet")
            await self.fleet.prepare_attestation(action.device, action.respond)
        answer = await self.call(site, "POST", f"/api/v1/cps/devices/{action.device}/attestations")
        nonce = answer.get("nonce") if isinstance(answer, dict) else None
        self.action("attest", site, action.device, respond=action.respond, nonce=nonce)
        return f"challenge {nonce} ({action.respond})"

    async def do_command(self, action: OperatorCommandAction) -> str:
        site = self.site_of(action.site, action.device)
        await self.call(
            site,
            "POST",
            f"/api/v1/cps/devices/{action.device}/commands",
            {"verb": action.verb.value},
        )
        self.action("command", site, action.device, verb=action.verb.value)
        return f"operator {action.verb.value}"

    async def _stop_service(self, site: str, service: str, kill: bool = False) -> None:
        if service == "backend":
            await asyncio.to_thread(self.bench.stop_backend, site, kill=kill)
        else:
            await asyncio.to_thread(self.bench.stop_service, site, service)
        self.stopped[(site, service)] = True

    async def _start_service(self, site: str, service: str) -> None:
        if service == "backend":
            await asyncio.to_thread(self.bench.start_backend, site)
        else:
            await asyncio.to_thread(self.bench.start_service, site, service)
        self.stopped[(site, service)] = False

    async def do_service(self, action: ServiceAction, start: bool) -> str:
        if start:
            await self._start_service(action.site, action.service)
        else:
            await self._stop_service(action.site, action.service, kill=action.kill)
        verb = "started" if start else ("killed" if action.kill else "stopped")
        self.note(f"{action.service} {verb}", site=action.site)
        return f"{action.service} of {action.site} {verb}"

    async def do_partition(self, action: PartitionAction, heal: bool) -> str:
        if heal:
            await self._start_service(action.site, "nats")
        else:
            await self._stop_service(action.site, "nats")
        text = "healed: NATS restarted" if heal else "partitioned: NATS stopped"
        self.note(text, site=action.site)
        return text

    async def do_replay(self, action: ReplayAction) -> str:
        seen = [
            e
            for e in self.timeline
            if e.kind is EventKind.NATS
            and e.site == action.from_site
            and str(e.get("subject", "")).startswith(action.subject)
        ]
        if not seen:
            raise StepError(
                f"no NATS message on {action.subject}* was seen at site {action.from_site} "
                "to replay"
            )
        last = seen[-1]
        data = last.get("data")
        payload = data.encode() if isinstance(data, str) else json.dumps(data).encode()
        subject = str(last.get("subject"))
        url = self.bench.info.site(action.site).nats
        try:
            client = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
        except Exception as error:
            raise StepError(f"cannot reach NATS of site {action.site}: {error}") from None
        try:
            for _ in range(action.count):
                await client.publish(subject, payload)
            await client.flush()
        finally:
            await client.close()
        self.action("replay", action.site, subject=subject, count=action.count)
        return f"{action.count} x {subject} from {action.from_site} at {action.site}"

    async def perform(self, step: Step) -> str:
        """Do the step's action; returns a short description for reports."""
        key = step.action_key
        action = step.action
        fleet = self.fleet
        match key:
            case None:
                return ""
            case "wait":
                await asyncio.sleep(float(action))
                return f"{float(action):g}s"
            case "swipe":
                assert fleet is not None
                for index in range(action.count):
                    if index:
                        await asyncio.sleep(action.interval)
                    fleet.swipe(action.device, action.uid)
                self.action(
                    "swipe",
                    self.site_of(None, action.device),
                    action.device,
                    uid=action.uid,
                    count=action.count,
                )
                return f"{action.uid} x{action.count}" if action.count > 1 else action.uid
            case "drift":
                assert fleet is not None
                fleet.fault(action.device, "firmware_drift", {})
                self.action("drift", self.site_of(None, action.device), action.device)
                return "flash image changed"
            case "fault":
                assert fleet is not None
                fleet.fault(action.device, action.kind, dict(action.params))
                self.action(
                    "fault",
                    self.site_of(None, action.device),
                    action.device,
                    fault=action.kind,
                    params=dict(action.params),
                )
                return str(action.kind)
            case "attest":
                return await self.do_attest(action)
            case "raise_alert":
                return await self.do_raise_alert(action)
            case "publish":
                return await self.do_publish(action)
            case "command":
                return await self.do_command(action)
            case "grant":
                await self.do_grant(action)
                return f"{action.uid} -> {', '.join(action.doors)}"
            case "revoke":
                return await self.do_revoke(action)
            case "stop":
                return await self.do_service(action, start=False)
            case "start":
                return await self.do_service(action, start=True)
            case "partition":
                return await self.do_partition(action, heal=False)
            case "heal":
                return await self.do_partition(action, heal=True)
            case "replay":
                return await self.do_replay(action)
        raise StepError(f"no action {key!r}")  # pragma: no cover

    # -------------------------------------------------------------- metrics

    async def sample_metrics(self, expectations: Iterable[Expectation]) -> None:
        """Record the current value of every counter a metric expectation names."""
        # federation_* counters come from the topology endpoint, sampled by the probe.
        wanted = [
            e.metric
            for e in expectations
            if e.metric is not None and not e.metric.name.startswith(FEDERATION_COUNTER)
        ]
        by_site: dict[str, list[MetricExpect]] = {}
        for body in wanted:
            by_site.setdefault(body.site or self.scenario.first_site, []).append(body)
        for site, bodies in by_site.items():
            try:
                response = await self.http[site].get("/metrics")
            except httpx.HTTPError:
                continue  # backend down on purpose: no sample, the bound decides
            if response.status_code != 200:
                continue
            values = metric_sums(response.text, bodies)
            for body, value in zip(bodies, values, strict=True):
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
        if any(e.key == "metric" for e in step.expect):
            await self.sample_metrics(step.expect)
        try:
            result.detail = await self.perform(step)
        except BenchError as error:  # StepError included
            result.error = str(error)
        except Exception as error:
            result.error = f"{type(error).__name__}: {error}"
        # Expectations count from when the action began: a bound includes its own action.
        result.action_s = clock() - started
        if result.error is None:
            result.expectations = await self.decide(step, started)
        result.ended = clock()
        self.timeline.record(
            EventKind.STEP, "runner", phase="end", name=step.name, index=index,
            passed=result.passed,
        )  # fmt: skip
        self.observer.step_finished(result)
        return result

    async def decide(self, step: Step, start: float) -> list[ExpectationResult]:
        context = Context(node_devices=self.fleet.node_devices if self.fleet else frozenset())
        pending = dict(enumerate(step.expect))
        decided: dict[int, ExpectationResult] = {}
        last_sample = start
        while pending:
            now = self.timeline.clock()
            # Latency checks look back over what happened: decide them after the step's
            # other expectations, which wait for the events to arrive.
            waiting = any(e.key != "latency" for e in pending.values())
            for index, expectation in list(pending.items()):
                if waiting and expectation.key == "latency":
                    continue
                outcome = evaluate(expectation, self.timeline, start, now, context)
                if outcome.verdict is Verdict.PENDING:
                    continue
                del pending[index]
                at = outcome.at if outcome.at is not None else now
                decided[index] = ExpectationResult(
                    description=describe(expectation),
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
            if pending:
                metric_pending = [e for e in pending.values() if e.key == "metric"]
                if metric_pending and now - last_sample >= METRIC_SAMPLE_S:
                    last_sample = now
                    await self.sample_metrics(metric_pending)
                soonest = min(deadline(e, start) for e in pending.values())
                await asyncio.sleep(min(EVALUATE_EVERY_S, max(0.0, soonest - now) + 0.001))
        return [decided[index] for index in sorted(decided)]

    async def play(self) -> ScenarioResult:
        result = ScenarioResult(
            self.scenario.name,
            str(self.loaded.path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
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
        if result.error is not None:
            result.error_context = list(self.timeline)[-25:]
        result.duration_s = time.monotonic() - began
        result.events = list(self.timeline)
        self.observer.scenario_finished(result)
        return result


async def run_scenario(
    loaded: LoadedScenario,
    bench: RunningBench,
    observer: RunObserver | None = None,
    *,
    pace_s: float = 0.0,
) -> ScenarioResult:
    """Run one scenario against ``bench`` (which must have the scenario's sites).

    ``pace_s`` waits that long before every step after the first (the demo's pace).
    """
    missing = [site for site in loaded.scenario.sites if site not in bench.info.sites]
    if missing:
        raise BenchError(f"{loaded.path}: the bench does not run site(s) {', '.join(missing)}")
    return await _Run(loaded, bench, observer or NullObserver(), pace_s).play()


# ---------------------------------------------------------------- many files


def select_scenarios(
    paths: Iterable[Path | str], keyword: str = ""
) -> tuple[list[LoadedScenario], list[ScenarioResult]]:
    """Load every scenario under ``paths`` and keep those ``-k keyword`` selects.

    Broken files become failed results (with their ``file:line`` problems), so one bad file
    does not hide the others.
    """
    matcher = compile_selection(keyword)
    loaded: list[LoadedScenario] = []
    broken: list[ScenarioResult] = []
    for path in iter_scenario_files(paths):
        try:
            item = load_scenario(path)
        except ScenarioLoadError as error:
            # A broken file has no name to select by but its file name.
            if matcher(names_of(path.stem, path.stem, ())):
                broken.append(ScenarioResult(path.stem, str(path), error=str(error)))
            continue
        if matcher(names_of(item.name, path.stem, item.scenario.markers)):
            loaded.append(item)
    return loaded, broken


_T = TypeVar("_T")


def group_by_bench(items: Sequence[_T], scenario_of: Callable[[_T], Scenario]) -> list[_T]:
    """``items`` ordered so that those whose scenarios share a bench run one after another.

    Stable; used for ``aurora-bench run`` (loaded files) and the pytest plugin (items).
    """
    order: dict[str, int] = {}
    for item in items:
        order.setdefault(scenario_of(item).bench_key(), len(order))
    return sorted(items, key=lambda item: order[scenario_of(item).bench_key()])


def run_files(
    paths: Iterable[Path | str],
    *,
    keyword: str = "",
    state_dir: Path = Path(".bench/scenarios"),
    db: str = "sqlite",
    observer: RunObserver | None = None,
) -> list[ScenarioResult]:
    """Run the selected scenarios, sharing benches where the sites match."""
    observer = observer or NullObserver()
    loaded, results = select_scenarios(paths, keyword)
    for broken in results:
        observer.scenario_finished(broken)
    pool = BenchPool(state_dir, db)
    try:
        for item in group_by_bench(loaded, lambda loaded_item: loaded_item.scenario):
            try:
                bench = pool.acquire(item.scenario)
            except BenchError as error:
                failed = ScenarioResult(
                    item.name, str(item.path), error=f"bench did not start: {error}"
                )
                observer.scenario_finished(failed)
                results.append(failed)
                continue
            results.append(asyncio.run(run_scenario(item, bench, observer)))
    finally:
        pool.close()
    return results
