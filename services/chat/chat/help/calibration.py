"""Questions that calibrate the help library's relevance threshold.

``ON_TOPIC`` pairs a question, written the way users write (curt, polite,
lower case, typos, no punctuation), with the article that answers it;
``OFF_TOPIC`` holds questions no help article answers. Running the module
prints the load time, where each on-topic question's article ranks, and the
two score distributions that :data:`library.MIN_SCORE` must separate::

    .venv/bin/python -m services.chat.chat.help.calibration
"""

from __future__ import annotations

import statistics
import time

ON_TOPIC: tuple[tuple[str, str], ...] = (
    ("how do i add a new sensor", "registering-devices"),
    ("register device", "registering-devices"),
    ("Can I rename my device?", "registering-devices"),
    ("how to register 200 devices from a spreadsheet at once", "registering-devices"),
    ("how do i get a token for my device so it can send data", "device-credentials"),
    ("my devices token leaked, how do I rotate it", "device-credentials"),
    ("revoke device key", "device-credentials"),
    ("how does a device stream readings over grpc", "streaming-readings"),
    ("why were some of my readings rejected TIMESTAMP_TOO_OLD", "streaming-readings"),
    ("can i send readings with a rest call instead of grpc", "streaming-readings"),
    ("why does my chart show fewer points than i sent", "viewing-readings"),
    ("how long do you keep my readings", "viewing-readings"),
    ("how to upload a csv of old readings", "importing-files"),
    ("can i import an excel file", "importing-files"),
    ("where do i see which rows of my file failed", "importing-files"),
    ("how do i turn on two factor", "two-factor-authentication"),
    ("lost my phone with the authenticator app", "two-factor-authentication"),
    ("what are recovery codes for", "two-factor-authentication"),
    ("disable 2fa", "two-factor-authentication"),
    ("forgot my pasword", "password-reset"),
    ("how can I change my password?", "password-reset"),
    ("the reset link doesnt work anymore", "password-reset"),
    ("i never got the verification email", "email-verification"),
    ("how do i confirm my email adress", "email-verification"),
    ("my account is locked", "signing-in"),
    ("how long is an access token valid", "signing-in"),
    ("where am i logged in", "sessions"),
    ("log out everywhere", "sessions"),
    ("sign out of my old laptop", "sessions"),
    ("show me the security log", "security-log"),
    ("who logged into my account? i see a login i dont recognise", "security-log"),
    ("how do I download all my data", "downloading-your-data"),
    ("gdpr export of my personal data", "downloading-your-data"),
    ("what types of anomalies are there", "anomalies"),
    ("what is a flatline", "anomalies"),
    ("what does the confidence score of an anomaly mean", "anomalies"),
    ("how do i dismiss a false alarm", "reviewing-anomalies"),
    ("the detector is too sensitive, too many alerts", "reviewing-anomalies"),
    ("confirm anomaly", "reviewing-anomalies"),
    ("export anomalies to csv", "exports"),
    ("can I download my correlation results", "exports"),
    ("what does p value mean in correlations", "correlations"),
    ("what is the lag in cross correlation", "correlations"),
    ("how do i correlate humidity with temperature", "correlations"),
    ("how does a site get a token with its client secret", "site-credentials"),
    ("rotate the client secret of a site", "site-credentials"),
    ("site gets invalid client credentials", "site-credentials"),
    ("is the system down?", "system-status"),
    ("what does degraded mean", "system-status"),
    ("how do i set my timezone", "profile-and-settings"),
    ("change my display name", "profile-and-settings"),
)

OFF_TOPIC: tuple[str, ...] = (
    "best pizza in rome",
    "whats the weather tomorrow",
    "tell me a joke",
    "who won the world cup in 2018",
    "asdfghjkl",
    "what is the capital of france",
    "recommend a good book",
    "how do i bake sourdough bread",
    "translate hello into spanish",
    "what's 17 times 23",
    "play some music",
    "how tall is mount everest",
    "what is the meaning of life",
    "can you write me a poem about cats",
    "which stocks should i buy",
    "book a flight to london",
    "how do i fix my car's brakes",
    "what movies are on tonight",
    "lol",
    "qwerty uiop",
)


def main() -> None:
    """Print load time, the rank of each on-topic question's article and the score spreads."""
    started = time.perf_counter()
    from services.chat.chat.help.library import MIN_SCORE, HelpLibrary

    imported = time.perf_counter()
    library = HelpLibrary.load()
    loaded = time.perf_counter()
    print(f"import {imported - started:.3f} s, load and index {loaded - imported:.3f} s")
    on_scores, hits = [], 0
    for question, slug in ON_TOPIC:
        scores = library.scores(question)
        best = library.search(question, limit=1)
        top = best[0].slug if best else "-"
        hits += top == slug
        on_scores.append(float(scores.max()))
        flag = "" if top == slug else f"   <-- expected {slug}"
        print(f"{scores.max():.3f} {top:28} {question}{flag}")
    off_scores = [float(library.scores(question).max(initial=0.0)) for question in OFF_TOPIC]
    for question, score in sorted(zip(OFF_TOPIC, off_scores, strict=True), key=lambda p: -p[1]):
        print(f"{score:.3f} off-topic                    {question}")
    print(f"top-1 right: {hits}/{len(ON_TOPIC)}; threshold {MIN_SCORE}")
    print(
        f"on-topic min {min(on_scores):.3f} median {statistics.median(on_scores):.3f}; "
        f"off-topic max {max(off_scores):.3f} median {statistics.median(off_scores):.3f}"
    )
    started = time.perf_counter()
    rounds = 200
    for _ in range(rounds):
        library.search("how do i turn on two factor")
    print(f"search: {(time.perf_counter() - started) / rounds * 1000:.2f} ms per question")


if __name__ == "__main__":
    main()
