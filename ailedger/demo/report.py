"""What a demo run reports: its summary, and the tables that print it at any terminal width.

The tables fit the console (80 columns when output is piped, in CI, in a default
terminal): figures are never wrapped, and a name too long for what is left of the
line is shortened with a numbered mark and printed in full in a legend below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Cells of a column's padding on each side; neighbouring paddings collapse into one.
_PADDING = 1
#: Cells between two columns: the collapsed padding and the (blank) divider.
_GAP = _PADDING + 1
#: A name is never shortened below this, even on a very narrow console.
_MIN_NAME = 12
_MARKS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True, slots=True)
class ModelCost:
    model: str
    provider: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal  # of the priced calls
    unpriced: int


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task: str
    calls: int
    cost: Decimal
    unpriced: int
    fallbacks: int
    errors: int
    avg_confidence: Decimal | None
    p95_latency_ms: int | None


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run did and what its traffic cost, as stored in Postgres."""

    events: int
    stored: int
    #: Events the producer could not take (its buffer was full); never sent.
    dropped: int
    rejected: int
    jobs: int
    #: From the first call logged to the last row committed.
    seconds: float
    by_model: tuple[ModelCost, ...]
    by_task: tuple[TaskSummary, ...]
    stream: str
    seed: int
    embedded: bool
    servers_start_s: float | None

    @property
    def complete(self) -> bool:
        return self.stored == self.events and not (self.dropped or self.rejected)

    @property
    def events_per_s(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0

    @property
    def total_cost(self) -> Decimal:
        return sum((m.cost for m in self.by_model), Decimal(0))

    @property
    def unpriced(self) -> int:
        return sum(m.unpriced for m in self.by_model)

    @property
    def fallback_rate(self) -> float:
        return sum(t.fallbacks for t in self.by_task) / self.stored if self.stored else 0.0

    @property
    def error_rate(self) -> float:
        return sum(t.errors for t in self.by_task) / self.stored if self.stored else 0.0


def _usd(value: Decimal) -> str:
    if value == 0:
        return "$0"
    places = 2 if value >= 1 else 4 if value >= Decimal("0.01") else 6
    return f"${value:,.{places}f}"


def _tokens(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    return f"{count / 1_000:.0f}k" if count >= 10_000 else f"{count:,}"


_MODEL_COLUMNS = ("model", "provider", "calls", "in", "out", "cost", "unpriced")
_TASK_COLUMNS = ("task", "calls", "cost", "conf.", "fallback", "errors", "p95 ms")
#: After a task's cost when part of its calls have no price (the cost is of the others).
_PARTLY_PRICED = "*"


def _table(title: str, *columns: str) -> Table:
    """A compact table whose first column is a name and the others text or figures."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, _PADDING),
        collapse_padding=True,
    )
    for index, name in enumerate(columns):
        # Names arrive already fitted (see _fit_names), so no cell ever needs to wrap.
        text = index == 0 or name == "provider"
        table.add_column(name, justify="left" if text else "right", no_wrap=True)
    return table


def _name_budget(width: int, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Cells left for the first column once every other column has its full width."""
    widths = [cell_len(name) for name in columns[1:]]
    for row in rows:
        widths = [max(w, cell_len(cell)) for w, cell in zip(widths, row[1:], strict=True)]
    return max(_MIN_NAME, width - sum(widths) - _GAP * len(widths))


def _fit_names(names: Sequence[str], budget: int) -> tuple[list[str], list[str]]:
    """Each name as it fits in ``budget`` cells, and a legend line for each one shortened."""
    labels: list[str] = []
    legend: list[str] = []
    for name in names:
        if cell_len(name) <= budget:
            labels.append(name)
            continue
        mark = str(len(legend) + 1).translate(_MARKS)
        labels.append(name[: budget - len(mark) - 1] + "…" + mark)
        legend.append(f"{mark} {name}")
    return labels, legend


def _print_table(
    console: Console, title: str, columns: Sequence[str], rows: list[list[str]]
) -> None:
    """Print rows under ``columns`` fitted to the console, then the legend of shortened names."""
    budget = _name_budget(console.width, columns, rows)
    labels, legend = _fit_names([row[0] for row in rows], budget)
    table = _table(title, *columns)
    for label, row in zip(labels, rows, strict=True):
        table.add_row(Text(label), *(Text(cell) for cell in row[1:]))
    console.print(table)
    for line in legend:
        console.print(Text(line, style="dim"))


def _model_rows(summary: DemoSummary) -> list[list[str]]:
    return [
        [
            m.model,
            m.provider or "",
            f"{m.calls:,}",
            _tokens(m.input_tokens),
            _tokens(m.output_tokens),
            _usd(m.cost) if m.unpriced < m.calls else "—",
            f"{m.unpriced:,}" if m.unpriced else "",
        ]
        for m in summary.by_model
    ]


def _task_cost(t: TaskSummary) -> str:
    if t.unpriced >= t.calls:
        return "—"
    return _usd(t.cost) + (_PARTLY_PRICED if t.unpriced else "")


def _task_rows(summary: DemoSummary) -> list[list[str]]:
    return [
        [
            t.task,
            f"{t.calls:,}",
            _task_cost(t),
            "" if t.avg_confidence is None else f"{t.avg_confidence}",
            f"{t.fallbacks / t.calls:.1%}",
            f"{t.errors / t.calls:.1%}",
            "" if t.p95_latency_ms is None else f"{t.p95_latency_ms:,}",
        ]
        for t in summary.by_task
    ]


def print_summary(summary: DemoSummary, console: Console) -> None:
    """The cost tables and the headline figures of a demo run, fitted to the console."""
    _print_table(console, "Cost by model (tokens in, out)", _MODEL_COLUMNS, _model_rows(summary))
    _print_table(console, "By task", _TASK_COLUMNS, _task_rows(summary))
    if any(0 < t.unpriced < t.calls for t in summary.by_task):
        console.print(
            Text(f"{_PARTLY_PRICED} cost of the priced calls; the others have none", style="dim")
        )
    console.print()
    status = "[green]all stored[/]" if summary.complete else "[red]INCOMPLETE[/]"
    rejected = f" · [red]{summary.rejected:,} rejected[/]" if summary.rejected else ""
    # One short line per fact, so that an 80-column console never breaks one in two.
    console.print(
        f"[bold]{summary.stored:,}[/] of {summary.events:,} calls stored ({status}) "
        f"from {summary.jobs:,} PDF jobs{rejected}"
    )
    console.print(
        f"total [bold]{_usd(summary.total_cost)}[/] + {summary.unpriced:,} unpriced calls "
        "(cost NULL, not $0)"
    )
    console.print(f"fallback {summary.fallback_rate:.1%} · errors {summary.error_rate:.1%}")
    console.print(
        f"end to end (first call → last row committed): {summary.seconds:.1f}s, "
        f"[bold]{summary.events_per_s:,.0f} events/s[/]"
    )
