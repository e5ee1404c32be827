"""Workers SIGKILLed at random moments while alerts flow: nothing lost, nothing doubled, as a
consumer reading `ready` and `failed` with isolation.level=read_committed sees it. (The long
version, with 200 alerts, is `python -m tests.bench.bench_chaos`; both drive
`tests.support.chaos.run`.)"""

import json

from tests.support.chaos import HOSTILE, run


def test_five_kills_across_forty_alerts_lose_and_double_nothing(pipeline_factory):
    figures = run(pipeline_factory(), alerts=40, kills=5, seed=7)
    print(json.dumps(figures, indent=1))
    assert figures["kills"] == 5
    assert figures["lost"] == [] and figures["completed"] == 40
    assert figures["duplicated"] == {}
    assert figures["failed_good_alerts"] == []
    # every hostile input ended as exactly one failure record, with its reason
    reasons = figures["failure_records_by_reason"]
    assert figures["hostile_without_record"] == 0
    assert figures["duplicated_failure_records"] == {}
    assert sum(reasons.values()) == len(HOSTILE)
    assert {"not_utf8", "not_json", "empty_text"} <= set(reasons)
