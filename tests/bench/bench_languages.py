"""The subject stage in the languages of EU-Alert, Turkish, Ukrainian, Indonesian and Thai, on
held-out texts (`tests/bench/data/languages.yaml`, none of them in the unit tests).

    python -m tests.bench.bench_languages [--json F]

Per language: the alerts whose hazard is the right one, those whose detected language is the
right one (no hint is given, as when a CAP alert's <language> is missing), and the false friends
that matched a hazard (should be 0). Every miss is listed under the table.
"""

from __future__ import annotations

import argparse
import json
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the held-out texts (YAML)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(yaml.safe_load(args.data.read_text(encoding="utf-8")))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
