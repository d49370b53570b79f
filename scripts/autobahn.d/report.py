#!/usr/bin/env python3
"""Helper for scripts/autobahn (Python 3, standard library only).

  report.py spec OUT.json URL AGENT OUTDIR CASES EXCLUDE
      Writes a fuzzingclient spec. CASES and EXCLUDE are comma-separated case patterns.
  report.py summary OUTDIR AGENT WSTEST_LOG
      Reads OUTDIR/index.json (and the per-case JSON files) and prints a summary; the last line is
      exactly `N passed, M failed`. Exit status 1 if M > 0 or no case ran, else 0.

A case passes when both its behavior and its behaviorClose are OK or INFORMATIONAL, or NON-STRICT in
a case listed in AUTOBAHN_ALLOWED_NON_STRICT (default 6.4.3,6.4.4: Sockway fails a fragmented message
with invalid UTF-8 at the end of the frame that carries it, not at the byte). Any other NON-STRICT is a
regression and fails: a server that, say, sends its close before the echo of an earlier message still
"passes" Autobahn with NON-STRICT.
UNIMPLEMENTED (e.g. permessage-deflate not negotiated in 12.* / 13.*) is a failure. A case that
wstest announced but that has no result in the report (wstest was stopped, the connection failed)
is a failure too.
"""
import ast
import json
import os
import re
import sys
from collections import Counter

ACCEPTABLE = {"OK", "NON-STRICT", "INFORMATIONAL"}
ALLOWED_NON_STRICT = {c.strip() for c in os.environ.get("AUTOBAHN_ALLOWED_NON_STRICT", "6.4.3,6.4.4").split(",") if c.strip()}


def passes(case_id, result):
    for key in ("behavior", "behaviorClose"):
        value = result.get(key)
        if value not in ACCEPTABLE or (value == "NON-STRICT" and case_id not in ALLOWED_NON_STRICT):
            return False
    return True


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def split_patterns(text):
    return [p.strip() for p in text.split(",") if p.strip()]


def write_spec(path, url, agent, outdir, cases, exclude):
    spec = {
        "outdir": outdir,
        # failByDrop=false is wstest's own default for conformance runs; spelled out here.
        # No compression option is needed: the 12.* / 13.* cases make their own
        # permessage-deflate offers, and every other case offers no extension.
        "options": {"failByDrop": False},
        "servers": [{"agent": agent, "url": url}],
        "cases": split_patterns(cases) or ["*"],
        "exclude-cases": split_patterns(exclude),
        "exclude-agent-cases": {},
    }
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


def announced_cases(log_path):
    """The case list wstest printed at start ("Cases = [...]"), or None."""
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                if line.startswith("Cases = "):
                    return [str(c) for c in ast.literal_eval(line[len("Cases = "):].strip())]
    except (OSError, ValueError, SyntaxError):
        pass
    return None


def one_line(text, limit=160):
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def case_reason(outdir, entry):
    try:
        with open(os.path.join(outdir, entry["reportfile"])) as f:
            detail = json.load(f)
    except (OSError, KeyError, ValueError):
        return "(no per-case report)"
    parts = []
    if detail.get("behavior") not in ACCEPTABLE:
        parts.append(one_line(detail.get("result", "")))
    if detail.get("behaviorClose") not in ACCEPTABLE:
        parts.append("close: " + one_line(detail.get("resultClose", "")))
    code, reason = detail.get("remoteCloseCode"), detail.get("remoteCloseReason")
    if code is not None or reason:
        parts.append("peer closed %s%s" % (code, (" %r" % reason) if reason else ""))
    return " | ".join(parts)


def summary(outdir, agent, log_path):
    index_path = os.path.join(outdir, "index.json")
    results = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            results = json.load(f).get(agent, {})
    else:
        print("no report at %s (wstest did not finish)" % index_path)

    expected = announced_cases(log_path)
    missing = sorted(set(expected or []) - set(results), key=case_key)

    behaviors = Counter(r.get("behavior", "?") for r in results.values())
    closes = Counter(r.get("behaviorClose", "?") for r in results.values())
    if missing:
        behaviors["NO RESULT"] = len(missing)

    print("")
    print("Autobahn|Testsuite fuzzingclient, agent %s: %d cases in report%s" % (
        agent, len(results), "" if expected is None else ", %d announced" % len(expected)))
    print("  %-16s %8s %14s" % ("result", "behavior", "behaviorClose"))
    names = sorted(set(behaviors) | set(closes), key=lambda n: (n not in ACCEPTABLE, n))
    for name in names:
        print("  %-16s %8d %14d" % (name, behaviors.get(name, 0), closes.get(name, 0)))

    failed = sorted((cid for cid, r in results.items() if not passes(cid, r)), key=case_key)
    passed = len(results) - len(failed)

    unimplemented = [c for c in failed if results[c].get("behavior") == "UNIMPLEMENTED"
                     and results[c].get("behaviorClose") in ACCEPTABLE]
    other = [c for c in failed if c not in set(unimplemented)]

    slow = sorted(results.items(), key=lambda kv: -kv[1].get("duration", 0))[:5]
    if slow and slow[0][1].get("duration", 0) >= 1000:
        print("  slowest: " + ", ".join("%s %.1fs" % (c, r.get("duration", 0) / 1000.0) for c, r in slow))

    if other:
        print("")
        print("Failed cases (%d):" % len(other))
        for cid in other:
            r = results[cid]
            print("  %-9s %s/%s  %s" % (cid, r.get("behavior"), r.get("behaviorClose"), case_reason(outdir, r)))
    if unimplemented:
        print("")
        print("UNIMPLEMENTED cases (%d; counted as failed):" % len(unimplemented))
        line = " "
        for cid in unimplemented:
            if len(line) + len(cid) > 100:
                print(line)
                line = " "
            line += " " + cid
        print(line)
    if missing:
        print("")
        print("Cases with no result (%d; counted as failed): %s" % (
            len(missing), " ".join(missing[:40]) + (" ..." if len(missing) > 40 else "")))

    n_failed = len(failed) + len(missing)
    print("")
    print("%d passed, %d failed" % (passed, n_failed))
    if passed + n_failed == 0:
        return 1
    return 1 if n_failed else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "spec" and len(argv) == 8:
        write_spec(*argv[2:])
        return 0
    if len(argv) >= 2 and argv[1] == "summary" and len(argv) == 5:
        return summary(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
