"""Terminal output of scenario runs: progress for ``aurora-bench run`` (the demo's
narration, built on it, is in ``bench.scenario.narration``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.scenario.loader import LoadedScenario
from bench.scenario.results import ScenarioResult, StepResult, failure_text
from bench.scenario.schema import Step
from bench.scenario.timeline import Event

MARK = {True: "[green]✓[/green]", False: "[red]✗[/red]"}


class ConsoleProgress:
    """One line per step as it finishes, the failure story, then a summary table."""

    def __init__(self, console: Console | None = None) -> None:
        # soft_wrap: `file:line:` lines must stay whole for editors and CI log parsers.
        self.console = console or Console(highlight=False, soft_wrap=True)

    def scenario_started(self, loaded: LoadedScenario) -> None:
        """Header line."""
        self.console.print(
            f"[bold]▶ {escape(loaded.name)}[/bold]  [dim]{escape(str(loaded.path))}[/dim]"
        )

    def step_started(self, step: Step, index: int, t: float) -> None:
        """Nothing: the line is printed when the step is decided."""

    def step_finished(self, result: StepResult) -> None:
        """One line for the step, with its slowest satisfied expectation."""
        latencies = [e.latency_s for e in result.expectations if e.latency_s is not None]
        slowest = f" [dim]{max(latencies) * 1000:.0f}ms[/dim]" if latencies else ""
        detail = f" [dim]({escape(result.detail)})[/dim]" if result.detail else ""
        figures = "".join(
            f" [dim]p50 {e.figures['p50'] * 1000:.1f}ms p99 {e.figures['p99'] * 1000:.1f}ms"
            f" over {e.figures['pairs']:.0f}[/dim]"
            for e in result.expectations
            if "p99" in e.figures
        )
        self.console.print(
            f"  {MARK[result.passed]} {result.started:7.2f}s {escape(result.name)}"
            f"{detail}{slowest}{figures}"
        )
        self._problems(result)

    def _problems(self, result: StepResult) -> None:
        if result.error:
            self.console.print(f"      [red]{escape(result.error)}[/red]")
        for expectation in result.expectations:
            if not expectation.passed:
                self.console.print(f"      [red]expected[/red] {escape(expectation.expected)}")
                self.console.print(f"      [red]observed[/red] {escape(expectation.observed)}")

    def event(self, event: Event) -> None:
        """Nothing: progress shows steps, the report shows the timeline."""

    def scenario_finished(self, result: ScenarioResult) -> None:
        """The verdict, and the failure story with its timeline."""
        word = "[green]passed[/green]" if result.passed else "[red]FAILED[/red]"
        self.console.print(f"  {word} in {result.duration_s:.2f}s")
        if not result.passed:
            self.console.print(failure_text(result), markup=False, style="red")

    def summary(self, results: Sequence[ScenarioResult]) -> None:
        """A table of every scenario."""
        table = Table(title="scenarios")
        table.add_column("scenario")
        table.add_column("result")
        table.add_column("steps", justify="right")
        table.add_column("time", justify="right")
        for result in results:
            table.add_row(
                escape(result.name),
                "[green]passed[/green]" if result.passed else "[red]FAILED[/red]",
                str(len(result.steps)),
                f"{result.duration_s:.2f}s",
            )
        self.console.print(table)
        failed = sum(not r.passed for r in results)
        colour = "red" if failed else "green"
        self.console.print(f"[{colour}]{len(results) - failed} passed, {failed} failed[/{colour}]")
