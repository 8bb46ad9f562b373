"""The live fuzz for longer: mutated real-client frames from many connections, then the checks.

    python stress/live_fuzz.py --seconds 600 --connections 64
    python stress/live_fuzz.py --seconds 60 --seed 123        # replay a run

The long version of tests/broker/test_live_fuzz.py (the harness is tests/live_fuzz.py). After
the fuzz: the broker is up and answers, its log has no traceback or internal error, it stops
cleanly, every partition passes the audit (CRC of every batch, indexes), and after a restart
confluent-kafka produces and consumes 1,000 records; every answer was the response its request
asked for and every close had a reason in live_fuzz.LIVE_CLOSES. Prints what was tried as
JSON: frames sent, answers, connections the broker closed, distinct error codes in answers and
distinct reasons the broker logged for closing connections (with counts). Exits 1 on the first
failed check.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import live_fuzz  # noqa: E402
from tests.broker.test_live_fuzz import FUZZ_BROKER, clean_client_round_trip  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.log_audit import audit_data_dir, problems_in  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pipeline", type=int, default=4, help="most requests written before waiting")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data dir and broker log")
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    overrides = {**FUZZ_BROKER, **dict(item.split("=", 1) for item in args.override)}
    work = Path(tempfile.mkdtemp(prefix="kbroker-fuzz-"))
    broker = BrokerProcess(work / "data", overrides).start()
    failed = False
    try:
        stats = asyncio.run(live_fuzz.run(broker.port, args.connections, args.seconds, seed, args.pipeline))
        log_text = broker.log_path.read_text(errors="replace")
        stats.close_reasons = live_fuzz.close_reasons(log_text)
        alive = broker.process.poll() is None
        failures = live_fuzz.broker_failures(log_text)
        closed_for = live_fuzz.close_reason_kinds(stats.close_reasons)
        unexpected_closes = sorted(reason.value for reason in set(closed_for) - live_fuzz.LIVE_CLOSES)
        result = {"seed": seed, **stats.summary(), "broker_alive": alive, "log_failures": len(failures),
                  "wrong_answers": dict(stats.wrong_answers.most_common(20)), "unexpected_closes": unexpected_closes,
                  "answer_errors": dict(stats.answer_errors.most_common()),
                  "close_reasons": dict(stats.close_reasons.most_common()),
                  "mutations": dict(stats.mutations.most_common())}
        if alive:
            result["clean_stop"] = broker.stop(timeout=120) == 0
            problems = problems_in(audit_data_dir(broker.data_dir))
            result["audit_problems"] = problems[:20]
            broker.start()
            clean_client_round_trip(broker.bootstrap, "after-the-fuzz")
            result["clean_client"] = "ok"
        print(json.dumps(result, indent=1))
        for line in failures[:40]:
            print("broker log:", line, file=sys.stderr)
        failed = (not alive or bool(failures) or bool(stats.wrong_answers) or bool(unexpected_closes)
                  or not result.get("clean_stop") or bool(result.get("audit_problems")))
        return 1 if failed else 0
    finally:
        broker.kill()
        if args.keep or failed:
            print(f"data dir and broker log kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
