"""Chat: how well the assistant understands messages, and how fast.

The evaluation set (``bench/data/chat_eval.jsonl``) holds utterances written
apart from the training ones, as users write them (short and long, lowercase,
typos, polite and curt), each with its expected intent and slots; its first
line fixes the moment, the time zone and the user's devices. Nothing in it is
trained on.

Reported: intent accuracy; slot accuracy per slot (over the utterances where
the slot is expected or answered, so empty slots do not flatter it) and
overall (the share of utterances whose every slot is right); the time to train
and to understand one utterance. The baseline, measured on the same set, is
what a literal reader does: intents by keyword lists, a device only when its
whole name is written, a slot only when its value is written as such, no
periods. The training time is compared with a logistic regression (lbfgs) on
the same features, the usual choice it replaces.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bench.report import Figure, JobResult
from services.chat.chat.nlu.classifier import load_examples, prepare
from services.chat.chat.nlu.understanding import (
    DeviceRef,
    Slots,
    Understander,
    Understanding,
)

QUALITY_TITLE = "12. Chat: understanding messages"
SPEED_TITLE = "13. Chat: understanding speed"
EVAL_PATH = Path(__file__).resolve().parent / "data" / "chat_eval.jsonl"
SLOT_NAMES = (
    "devices",
    "device_type",
    "device_status",
    "metric",
    "period",
    "anomaly_type",
    "review_status",
)
INTENT_TARGET = 0.95
SLOT_TARGET = 0.90
TRAIN_REPEATS = 5

Understand = Callable[[str], Understanding]


@dataclass(frozen=True, slots=True)
class Case:
    """One utterance of the evaluation set and what it should be understood as."""

    text: str
    intent: str
    slots: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EvalSet:
    """The evaluation set: the moment, the zone and the devices, and the cases."""

    now: datetime
    tz: ZoneInfo
    device_names: tuple[str, ...]
    cases: tuple[Case, ...]


def load_eval(path: Path = EVAL_PATH) -> EvalSet:
    """The evaluation set of ``path``: a header line, then one case per line."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    tz = ZoneInfo(header["tz"])
    return EvalSet(
        now=datetime.fromisoformat(header["now"]).replace(tzinfo=tz),
        tz=tz,
        device_names=tuple(header["device_names"]),
        cases=tuple(Case(r["text"], r["intent"], r.get("slots", {})) for r in rows),
    )


def _expected(case: Case, tz: ZoneInfo) -> dict[str, Any]:
    """The case's slots in the form :func:`_answered` gives."""
    period = case.slots.get("period")
    return {
        "devices": tuple(tuple(sorted(d)) for d in case.slots.get("devices", ())),
        "period": None
        if period is None
        else tuple(
            datetime.fromisoformat(period[k]).replace(tzinfo=tz).timestamp()
            for k in ("start", "end")
        ),
        **{name: case.slots.get(name) for name in SLOT_NAMES if name not in ("devices", "period")},
    }


def _answered(slots: Slots) -> dict[str, Any]:
    return {
        "devices": tuple(tuple(sorted(d.matches)) for d in slots.devices),
        "period": None
        if slots.period is None
        else (slots.period.start.timestamp(), slots.period.end.timestamp()),
        **{name: getattr(slots, name) for name in SLOT_NAMES if name not in ("devices", "period")},
    }


def _empty(value: Any) -> bool:
    return value is None or value == ()


@dataclass
class Scores:
    """What one understander got right on the evaluation set."""

    cases: int = 0
    intents_right: int = 0
    slots_right: int = 0
    per_slot: dict[str, list[int]] = field(default_factory=lambda: {n: [0, 0] for n in SLOT_NAMES})
    errors: list[str] = field(default_factory=list)

    @property
    def intent_accuracy(self) -> float:
        return self.intents_right / self.cases if self.cases else float("nan")

    @property
    def slot_accuracy(self) -> float:
        return self.slots_right / self.cases if self.cases else float("nan")

    def slot(self, name: str) -> float:
        """Accuracy of one slot over the cases where it is expected or answered."""
        right, seen = self.per_slot[name]
        return right / seen if seen else float("nan")


def score(understand: Understand, evalset: EvalSet) -> Scores:
    """How ``understand`` does on every case of ``evalset``."""
    scores = Scores()
    for case in evalset.cases:
        got = understand(case.text)
        expected, answered = _expected(case, evalset.tz), _answered(got.slots)
        scores.cases += 1
        if got.intent == case.intent:
            scores.intents_right += 1
        else:
            scores.errors.append(f"intent {case.text!r}: {got.intent} != {case.intent}")
        wrong = []
        for name in SLOT_NAMES:
            if _empty(expected[name]) and _empty(answered[name]):
                continue
            scores.per_slot[name][1] += 1
            if expected[name] == answered[name]:
                scores.per_slot[name][0] += 1
            else:
                wrong.append(f"{name} {answered[name]!r} != {expected[name]!r}")
        if wrong:
            scores.errors.append(f"slots {case.text!r}: " + "; ".join(wrong))
        else:
            scores.slots_right += 1
    return scores


_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("human", ("human", "person", "agent", "someone", "support")),
    ("complaint", ("wrong", "useless", "rubbish", "frustrat", "not what", "nonsense")),
    ("help", ("how do i", "how to", "how can i", "password", "2fa", "two factor", "export")),
    ("correlation", ("correlat", "relationship", "relate")),
    ("anomalies", ("anomal", "odd", "unusual", "spike", "dip", "weird", "gap")),
    ("reading_stats", ("average", "max", "min", "highest", "lowest", "mean")),
    ("device_count", ("how many", "count", "number of")),
    ("device_list", ("list", "which devices", "which sensors", "show me")),
    ("system_status", ("system", "platform", "outage", "server", "service")),
    ("device_status", ("status", "online", "offline", "last seen")),
    ("latest_reading", ("temperature", "temp", "humidity", "pressure", "reading")),
    ("thanks", ("thank", "thx", "cheers")),
    ("goodbye", ("bye", "see you")),
    ("greeting", ("hello", "hi", "hey", "morning")),
    ("smalltalk", ("how are you", "who are you", "your name", "are you")),
)
_LITERAL = {
    "device_type": ("temperature", "pressure", "motion"),
    "device_status": ("active", "inactive", "maintenance"),
    "metric": ("temperature", "humidity", "pressure", "acceleration"),
    "anomaly_type": ("spike", "dip", "flatline", "gap", "out of range", "rate of change"),
    "review_status": ("pending", "confirmed", "dismissed"),
}


def keyword_baseline(device_names: Sequence[str]) -> Understand:
    """The literal reader: keyword intents, whole device names, slot values as written."""

    def understand(text: str) -> Understanding:
        lowered = text.lower()
        words = set(re.findall(r"[a-z0-9']+", lowered))
        intent = next(
            (
                name
                for name, keys in _KEYWORDS
                if any((k in words) if " " not in k and len(k) < 4 else k in lowered for k in keys)
            ),
            "out_of_scope",
        )
        found = {
            name: next(
                (v.replace(" ", "_") for v in values if re.search(rf"\b{v}\b", lowered)), None
            )
            for name, values in _LITERAL.items()
        }
        devices = tuple(
            DeviceRef(mention=n, matches=(n,)) for n in device_names if n.lower() in lowered
        )
        slots = Slots(
            devices=devices,
            device_type=found["device_type"],
            device_status=found["device_status"],
            metric=found["metric"],
            anomaly_type=found["anomaly_type"],
            review_status=found["review_status"],
        )
        return Understanding(intent, 1.0, slots)

    return understand


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _logistic_regression_fit() -> None:
    texts = [prepare(e.text) for e in load_examples()]
    labels = [e.intent for e in load_examples()]
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    matrix = sp.hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    LogisticRegression(C=10.0, max_iter=2000).fit(matrix, labels)


def _per_call(understand: Understand, texts: Sequence[str]) -> list[float]:
    times = []
    for text in texts:
        began = time.perf_counter()
        understand(text)
        times.append(time.perf_counter() - began)
    return times


def _quality_figures(ours: Scores, base: Scores) -> list[Figure]:
    figures = [
        Figure(
            "intent accuracy",
            "%",
            100 * ours.intent_accuracy,
            "keyword rules",
            100 * base.intent_accuracy,
            f"{ours.cases} held-out utterances, 16 intents",
            target=f">= {100 * INTENT_TARGET:.0f} %",
            met=ours.intent_accuracy >= INTENT_TARGET,
        ),
        Figure(
            "slot accuracy, overall (every slot of the utterance right)",
            "%",
            100 * ours.slot_accuracy,
            "literal names and values",
            100 * base.slot_accuracy,
            "devices, type, status, metric, period, anomaly type, review status",
            target=f">= {100 * SLOT_TARGET:.0f} %",
            met=ours.slot_accuracy >= SLOT_TARGET,
        ),
    ]
    for name in SLOT_NAMES:
        figures.append(
            Figure(
                f"slot accuracy, {name}",
                "%",
                100 * ours.slot(name),
                "literal names and values",
                100 * base.slot(name),
                f"over the {ours.per_slot[name][1]} utterances where it is expected or answered",
            )
        )
    return figures


async def measure(*, path: Path = EVAL_PATH, repeats: int = TRAIN_REPEATS) -> JobResult:
    """Train, understand the evaluation set, and time both; print the errors."""
    evalset = load_eval(path)
    understander = Understander.trained()

    def ours(text: str) -> Understanding:
        return understander.understand(
            text, now=evalset.now, tz=evalset.tz, device_names=evalset.device_names
        )

    baseline = keyword_baseline(evalset.device_names)
    mine, base = score(ours, evalset), score(baseline, evalset)
    for error in mine.errors:
        print(f"  chat: {error}")
    train = _median_seconds(Understander.trained, repeats)
    regression = _median_seconds(_logistic_regression_fit, max(1, repeats // 2))
    texts = [case.text for case in evalset.cases]
    _per_call(ours, texts)  # warm caches, as a running service has
    ours_times = _per_call(ours, texts)
    base_times = _per_call(baseline, texts)
    job = JobResult(when="", options="")
    job.sections[QUALITY_TITLE] = _quality_figures(mine, base)
    job.sections[SPEED_TITLE] = [
        Figure(
            "train the understander at start-up",
            "ms",
            1000 * train,
            "logistic regression (lbfgs), same features",
            1000 * regression,
            f"median of {repeats}; {len(load_examples())} training utterances",
            lower_is_better=True,
            target="< 1000 ms",
            met=train < 1.0,
        ),
        Figure(
            "understand one message, p50",
            "ms",
            1000 * float(np.median(ours_times)),
            "keyword rules",
            1000 * float(np.median(base_times)),
            f"intent and slots, {len(evalset.device_names)} devices; "
            f"p95 {1000 * float(np.percentile(ours_times, 95)):.1f} ms",
            lower_is_better=True,
        ),
    ]
    job.notes.append(
        f"chat evaluation set: {len(evalset.cases)} utterances "
        f"({path.relative_to(Path(__file__).resolve().parent.parent)}), none in the training data"
    )
    return job
