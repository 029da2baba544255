"""docs/CONFIG.md lists exactly the keys, defaults and meanings that `lgd config reference`
prints, so the documentation cannot drift from the code.

usage: config_doc_test.py LGD CONFIG_MD
"""
import subprocess
import sys

lgd, doc = sys.argv[1], sys.argv[2]
table = subprocess.run([lgd, "config", "reference"], capture_output=True, text=True, check=True).stdout
text = open(doc, encoding="utf-8").read()
begin, end = "<!-- lgd config reference: begin -->\n", "<!-- lgd config reference: end -->"
if begin not in text or end not in text:
    sys.exit(f"{doc}: markers missing")
documented = text.split(begin, 1)[1].split(end, 1)[0]
if documented.strip() != table.strip():
    sys.exit(f"{doc} is out of date: regenerate the table with `lgd config reference`")
print(f"{doc}: {table.count(chr(10)) - 2} keys documented, in step with the code")
