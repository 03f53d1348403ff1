"""Names the tests a `swift test` log shows started and never finished (for a run that overran its bound).

Usage: python3 scripts/lib/unfinished_tests.py LOG
"""
import re
import sys

started: list[str] = []
finished: set[str] = set()
with open(sys.argv[1], errors="replace") as log:
    for line in log:
        if "Test case passing" in line:
            continue
        if match := re.search(r"Test (\S+\(.*?\)) started", line):
            started.append(match.group(1))
        elif match := re.search(r"Test (\S+\(.*?\)) (?:with \d+ test cases? )?(?:passed|failed)", line):
            finished.add(match.group(1))
        elif match := re.search(r"Test Case '(.+?)' started", line):
            started.append(match.group(1))
        elif match := re.search(r"Test Case '(.+?)' (?:passed|failed)", line):
            finished.add(match.group(1))
for name in started:
    if name not in finished:
        print("  " + name)
