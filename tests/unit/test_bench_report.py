"""The benchmark page: tables under a section's figures survive a partial rerun."""

from __future__ import annotations

from pathlib import Path

from bench.report import Figure, JobResult, Table, load, render, write


def test_tables_render_under_their_section_and_round_trip(tmp_path: Path) -> None:
    job = JobResult(when="today", options="--only nab")
    job.sections["8. NAB"] = [Figure("ours", "points", 63.7, "numenta", 69.7)]
    job.tables["8. NAB"] = [
        Table("Side by side:", ["detector", "standard"], [["ours", "63.74"]], "lr")
    ]
    job.tables["9. Only a table"] = [Table("", ["a", "b"], [["1", "2"]])]
    page = render({"nab": job}, command="make bench", order=["8. NAB", "9. Only a table"])
    assert "| ours | 63.7 points | numenta | 69.7 points | 0.91x |" in page
    section = page[page.index("## 8. NAB") : page.index("## 9. Only a table")]
    assert section.index("| ours | 63.7") < section.index("Side by side:")
    assert "| detector | standard |\n|---|---:|\n| ours | 63.74 |" in section
    only = page[page.index("## 9. Only a table") :]
    assert "| measured |" not in only.split("## Notes")[0].split("<!--")[0]
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in only
    path = tmp_path / "BENCHMARKS.md"
    write({"nab": job}, command="make bench", path=path, order=["8. NAB"])
    assert load(path)["nab"].tables == job.tables


def test_a_page_without_tables_still_loads(tmp_path: Path) -> None:
    job = JobResult(when="today", options="")
    job.sections["7. F1"] = [Figure("F1, spike", "F1", 0.9, "baseline", 0.5)]
    path = tmp_path / "BENCHMARKS.md"
    write({"analytics": job}, command="make bench", path=path, order=[])
    text = path.read_text().replace(', "tables": {}', "")  # as written before tables existed
    assert '"tables"' not in text
    path.write_text(text)
    assert load(path)["analytics"].sections == job.sections
    assert load(path)["analytics"].tables == {}
