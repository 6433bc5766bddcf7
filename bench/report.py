"""Benchmark results and their Markdown rendering into docs/BENCHMARKS.md.

Figures are grouped by the job that measured them (``python -m bench --only
JOB`` re-measures one job). The page keeps every job's figures as JSON in an
HTML comment at its end, so a partial run rewrites the whole page with the
other jobs' figures from their last run, each job dated.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

_DATA = re.compile(r"<!-- bench-data (.*?) -->", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured value beside the baseline it is compared with."""

    name: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    note: str = ""
    # Latencies, bytes and memory: smaller is better, and the ratio reads the other way.
    lower_is_better: bool = False
    target: str = ""
    met: bool | None = None
    # When the baseline is counted in another unit (readings against messages).
    baseline_unit: str = ""

    @property
    def ratio(self) -> float:
        """The measured value as a multiple of the baseline's."""
        return self.value / self.baseline if self.baseline else float("nan")


@dataclass(frozen=True, slots=True)
class Table:
    """A table under a section's figures, for comparisons one value per row cannot show
    (several profiles side by side, a breakdown); cells are Markdown, already formatted."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    align: str = ""  # a letter per column, "l" or "r" (left when missing)


@dataclass
class JobResult:
    """What one job measured: figures (and tables) by section title, when, with which options."""

    when: str
    options: str
    sections: dict[str, list[Figure]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, list[Table]] = field(default_factory=dict)


def _number(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(figure: Figure) -> str:
    ratio = figure.ratio
    if ratio != ratio:
        return "n/a"
    text = f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.4f}x"
    return text + (" (lower is better)" if figure.lower_is_better else "")


def _target(figure: Figure) -> str:
    if not figure.target:
        return ""
    mark = {True: "met", False: "**missed**", None: ""}[figure.met]
    return f"{figure.target} {mark}".strip()


def _table(table: Table, job: str | None) -> list[str]:
    """A table's Markdown: its caption (with the job, when several), the header, the rows."""
    caption = table.caption + (f" ({job})" if job else "")
    lines = [caption, ""] if caption else []
    rules = ["---:" if table.align[i : i + 1] == "r" else "---" for i in range(len(table.header))]
    lines += ["| " + " | ".join(table.header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return [*lines, ""]


def render(
    jobs: dict[str, JobResult], *, command: str, order: list[str], intro: list[str] | None = None
) -> str:
    """The Markdown page: sections in ``order``, figures from every job that measured them."""
    lines = [
        "# Benchmarks",
        "",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, by `{command}`.",
        "Each figure is compared with a baseline measured in the same job on the same machine;",
        "the ratio is measured ÷ baseline.",
        "",
        *(intro or []),
        "| job | measured | options |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {job.when} | `{job.options}` |" for name, job in jobs.items()]
    lines.append("")
    present = {t for j in jobs.values() for t in (*j.sections, *j.tables)}
    titles = [t for t in order if t in present]
    titles += sorted(present - set(titles))
    for title in titles:
        lines += [f"## {title}", ""]
        if any(job.sections.get(title) for job in jobs.values()):
            lines += [
                "| measured | value | baseline | baseline value | ratio | target | note |",
                "|---|---:|---|---:|---:|---|---|",
            ]
            for name, job in jobs.items():
                for f in job.sections.get(title, []):
                    lines.append(
                        f"| {f.name} | {_number(f.value)} {f.unit} | {f.baseline_name} | "
                        f"{_number(f.baseline)} {f.baseline_unit or f.unit} | {_ratio(f)} | "
                        f"{_target(f)} | "
                        f"{f.note}{'' if len(jobs) == 1 else f' ({name})'} |"
                    )
            lines.append("")
        for name, job in jobs.items():
            for table in job.tables.get(title, []):
                lines += _table(table, None if len(jobs) == 1 else name)
    notes = [(name, note) for name, job in jobs.items() for note in job.notes]
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {note} ({name})" for name, note in notes]
        lines.append("")
    data = {
        name: {
            "when": job.when,
            "options": job.options,
            "notes": job.notes,
            "sections": {t: [asdict(f) for f in figs] for t, figs in job.sections.items()},
            "tables": {t: [asdict(x) for x in tables] for t, tables in job.tables.items()},
        }
        for name, job in jobs.items()
    }
    lines += [f"<!-- bench-data {json.dumps(data, sort_keys=True)} -->", ""]
    return "\n".join(lines)


def load(path: Path) -> dict[str, JobResult]:
    """The jobs recorded in an earlier page (none when it has no data or cannot be read)."""
    try:
        found = _DATA.search(path.read_text())
        raw = json.loads(found.group(1)) if found else {}
        return {
            name: JobResult(
                when=job["when"],
                options=job["options"],
                notes=list(job.get("notes", [])),
                sections={t: [Figure(**f) for f in figs] for t, figs in job["sections"].items()},
                tables={
                    t: [Table(**x) for x in tables] for t, tables in job.get("tables", {}).items()
                },
            )
            for name, job in raw.items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write(
    jobs: dict[str, JobResult],
    *,
    command: str,
    path: Path,
    order: list[str],
    intro: list[str] | None = None,
) -> None:
    """Write the page to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(jobs, command=command, order=order, intro=intro))
