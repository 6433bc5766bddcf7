"""Reading a process's ``/metrics`` in tests: every sample, by name and labels."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Each sample's value, keyed by sample name and its labels."""


async def exposition(port: int) -> str:
    """What ``http://127.0.0.1:port/metrics`` answers, as text."""
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def families(text: str) -> set[str]:
    """The metric names an exposition declares (its ``# HELP`` lines), those without a
    sample yet (a labelled counter nothing incremented) included."""
    return set(re.findall(r"^# HELP (\S+) ", text, flags=re.MULTILINE))


async def scrape(port: int) -> Samples:
    """Every sample ``http://127.0.0.1:port/metrics`` answers (the text format, parsed)."""
    text = await exposition(port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value for (sample, have), value in samples.items() if sample == name and wanted <= have
    )


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    """The values ``label`` takes among ``name``'s samples."""
    return {
        dict(have)[label] for (sample, have) in samples if sample == name and label in dict(have)
    }


def names(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    """Every sample name present."""
    return {sample for sample, _ in samples}
