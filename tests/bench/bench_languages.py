"""The subject stage in the languages of EU-Alert, Turkish, Ukrainian, Indonesian and Thai, on
held-out texts (`tests/bench/data/languages.yaml`, none of them in the unit tests).

    python -m tests.bench.bench_languages [--json F]

Per language: the alerts whose hazard is the right one, those whose detected language is the
right one (no hint is given, as when a CAP alert's <language> is missing), and the false friends
that matched a hazard (should be 0). Every miss is listed under the table, and the subject
stage's time per call (median of 5 runs of 100 calls) on three alerts of 100-180 characters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import yaml

from alertanim.pipeline.subject import primary_subject

DATA = Path(__file__).resolve().parent / "data" / "languages.yaml"


def run(data: dict) -> dict:
    rows, misses = {}, []
    for lang, cases in data.items():
        alerts, friends = cases.get("alerts", []), cases.get("false_friends", [])
        hazard = language = matched = 0
        for text, expected in alerts:
            found = primary_subject(text)
            hazard += found.hazard == expected
            language += found.language == lang
            if (found.hazard, found.language) != (expected, lang):
                misses.append(f"{lang}: {text!r}: {found.hazard} ({found.language}), "
                              f"expected {expected} ({lang})")
        for text in friends:
            found = primary_subject(text)
            if found.hazard is not None:
                matched += 1
                misses.append(f"{lang}: false friend {text!r} matched {found.hazard} "
                              f"({found.matched!r}, {found.language})")
        rows[lang] = {"alerts": len(alerts), "hazard_right": hazard, "language_right": language,
                      "false_friends": len(friends), "false_friends_matched": matched}
    return {"languages": rows, "misses": misses}


TIMED = [
    "Flash Flood Warning for Harris County until 9:45 PM CDT. Turn around, don't drown. "
    "Avoid low water crossings and move to higher ground now. Check local media for news.",
    "[행정안전부] 오늘 15:20 강남구 역삼동 상가 건물 화재 발생, 인근 주민은 연기 흡입에 유의하시고 "
    "차량은 우회하여 주시기 바랍니다. 추가 안내가 있을 때까지 창문을 닫아 주십시오.",
    "Aviso de inundación repentina en esta zona hasta las 3:00 AM. Evite las áreas inundadas "
    "y no cruce calles con agua. Busque terreno elevado ahora y siga las instrucciones.",
]


def per_call_ms(texts=TIMED) -> dict[str, float]:
    """Median milliseconds per `primary_subject` call, per text (after one call to warm up)."""
    out = {}
    for text in texts:
        primary_subject(text)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(100):
                primary_subject(text)
            runs.append((time.perf_counter() - start) / 100)
        out[text[:32]] = round(statistics.median(runs) * 1000, 4)
    return out


def report(result: dict) -> str:
    rows = result["languages"]
    lines = ["language  alerts  hazard right  language right  false friends  matched",
             "--------  ------  ------------  --------------  -------------  -------"]
    total = dict.fromkeys(next(iter(rows.values())), 0) if rows else {}
    for lang, row in rows.items():
        lines.append(f"{lang:<8}  {row['alerts']:>6}  {row['hazard_right']:>12}  "
                     f"{row['language_right']:>14}  {row['false_friends']:>13}  "
                     f"{row['false_friends_matched']:>7}")
        for key in total:
            total[key] += row[key]
    if rows:
        lines.append(f"{'all':<8}  {total['alerts']:>6}  {total['hazard_right']:>12}  "
                     f"{total['language_right']:>14}  {total['false_friends']:>13}  "
                     f"{total['false_friends_matched']:>7}")
    lines.append("")
    lines += ["misses:", *(f"  {miss}" for miss in result["misses"])] if result["misses"] else [
        "misses: none"]
    if result.get("per_call_ms"):
        lines += ["", "ms per call (median of 5 × 100):",
                  *(f"  {ms:.3f}  {text!r}…" for text, ms in result["per_call_ms"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the held-out texts (YAML)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(yaml.safe_load(args.data.read_text(encoding="utf-8")))
    result["per_call_ms"] = per_call_ms()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
