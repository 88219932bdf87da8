#!/usr/bin/env python3
"""Writes the SQL target's seed corpus from the golden SQL files of the repository.

Each golden file becomes one seed: its statements in order, joined into one multi-statement text
(so the tables a statement uses are created earlier in the same input), cut at about 6 KB.
Usage: python3 fuzz/tools/sql_seeds.py  (from the repository root; rewrites fuzz/seeds/sql/golden-*).
"""
import glob, os, re

OUT = "fuzz/seeds/sql"
LIMIT = 6000

def statements(path):
    """The statements of a golden file: crates/sql/tests/golden (text before '----') and
    tests/sql (the lines after a 'statement ...' or 'query ...' directive)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, current = [], []
    sqllogic = path.startswith("tests/sql")
    i = 0
    for line in lines:
        if line.startswith("#") or line.startswith("-- "):
            continue
        if sqllogic:
            if re.match(r"^(statement|query)\b", line):
                current = []
                continue
            if line.strip() == "" or line == "----":
                if current:
                    out.append("\n".join(current)); current = []
                current = None if line == "----" else []
                continue
            if current is not None:
                current.append(line)
        else:
            if line == "----":
                if current:
                    out.append("\n".join(current))
                current = None
                continue
            if line.strip() == "":
                current = []
                continue
            if current is not None:
                current.append(line)
    return [s for s in out if s.strip()]

os.makedirs(OUT, exist_ok=True)
for old in glob.glob(os.path.join(OUT, "golden-*")):
    os.remove(old)
for path in sorted(glob.glob("crates/sql/tests/golden/*.test") + glob.glob("tests/sql/*.test")):
    text = ""
    for statement in statements(path):
        if len(text) + len(statement) > LIMIT:
            break
        text += statement.rstrip().rstrip(";") + ";\n"
    name = os.path.splitext(os.path.basename(path))[0]
    with open(os.path.join(OUT, "golden-" + name), "w", encoding="utf-8") as f:
        f.write(text)
