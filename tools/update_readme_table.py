"""Regenerate the README's algorithm table from the registries (`lenrl algos`):

python tools/update_readme_table.py
"""

from pathlib import Path

from lenrl.catalog import markdown

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- algos:start -->\n", "<!-- algos:end -->"

text = README.read_text()
a, b = text.index(START) + len(START), text.index(END)
README.write_text(text[:a] + markdown() + text[b:])
