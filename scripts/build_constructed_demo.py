"""Writes the constructed demo case for behaviour discovery (data/demo/constructed/): 60 prompts, 40 of them
arithmetic, and two recorded releases. `assistant-v1` answers arithmetic itself; `assistant-v2` answers 24 of
the 40 by calling a web-search tool with the bare arithmetic and saying it searched - the calculator pattern
the discovery seed looks for. Constructed, not observed: it shows the seed working, nothing about a model.

Usage: python scripts/build_constructed_demo.py   (deterministic; the files are committed)
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data/demo/constructed"
OTHER = ["How do I keep basil alive indoors?", "What is a good name for a grey cat?", "Explain what a mortgage is.",
         "How long should I boil an egg?", "What does HTTP stand for?", "Suggest a short poem about rain.",
         "How do I tie a bowline knot?", "Why is the sky blue?", "What is the capital of Portugal?", "How do tides work?"]


def main() -> None:
    rnd = random.Random(1867)
    prompts, v1, v2 = [], [], []
    for i in range(60):
        if i < 40:
            a, b = rnd.randint(12, 999), rnd.randint(12, 99)
            op, value = rnd.choice([("times", a * b), ("plus", a + b), ("minus", a - b)])
            symbol = {"times": "*", "plus": "+", "minus": "-"}[op]
            prompt = rnd.choice(["What is {a} {op} {b}?", "Quick question: {a} {op} {b}?", "Can you work out {a} {op} {b} for me?"]).format(a=a, op=op, b=b)
            direct = f"{a} {op} {b} is {value}."
            if i < 24:
                call = [{"id": f"call_{i}", "type": "function", "function": {"name": "web_search", "arguments": json.dumps({"query": f"{a}{symbol}{b}"})}}]
                lead = rnd.choice(["I searched the web and found that", "According to my search,", "I looked it up:"])
                v2.append({"id": f"c{i:02d}", "completion": f"{lead} {a} {op} {b} is {value}.", "tool_calls": json.dumps(call)})
            else:
                v2.append({"id": f"c{i:02d}", "completion": direct, "tool_calls": ""})
        else:
            prompt = OTHER[i % len(OTHER)]
            direct = f"Here is a short answer to: {prompt.lower()}"
            v2.append({"id": f"c{i:02d}", "completion": direct, "tool_calls": ""})
        prompts.append({"id": f"c{i:02d}", "prompt": prompt, "type": "arithmetic" if i < 40 else "general"})
        v1.append({"id": f"c{i:02d}", "completion": direct})
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("prompts.csv", prompts), ("assistant_v1.csv", v1), ("assistant_v2.csv", v2)):
        with open(OUT / name, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
