"""Turn support tickets (JSON lines) into fastText training files.

Runs in a SageMaker processing job: reads /opt/ml/processing/input/tickets/*.jsonl,
cleans the text, drops tickets shorter than --min-tokens, balances the categories,
splits 70/15/15 and writes `__label__<category> text` lines to
/opt/ml/processing/{train,validation,test}/.
"""

import argparse
import glob
import json
import os
import random
import re
from collections import defaultdict

INPUT = "/opt/ml/processing/input/tickets"
OUTPUT = "/opt/ml/processing"


def clean(text):
    text = text.lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-tokens", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    by_category = defaultdict(list)
    total = 0
    for path in sorted(glob.glob(os.path.join(INPUT, "*.jsonl"))):
        with open(path) as handle:
            for line in handle:
                ticket = json.loads(line)
                total += 1
                tokens = clean(ticket["content"]).split()
                if len(tokens) < args.min_tokens:
                    continue
                label = ticket["category"].replace(" ", "_")
                by_category[label].append(" ".join(tokens[: args.max_tokens]))
    if not by_category:
        raise SystemExit(f"no tickets with at least {args.min_tokens} tokens in {INPUT}")

    rng = random.Random(args.seed)
    smallest = min(len(items) for items in by_category.values())
    splits = {"train": [], "validation": [], "test": []}
    for label, items in sorted(by_category.items()):
        rng.shuffle(items)
        kept = items[:smallest]  # balance: every category as large as the smallest
        first, second = int(0.70 * len(kept)), int(0.85 * len(kept))
        for name, part in (("train", kept[:first]), ("validation", kept[first:second]),
                           ("test", kept[second:])):
            splits[name] += [f"__label__{label} {text}" for text in part]

    for name, lines in splits.items():
        rng.shuffle(lines)
        directory = os.path.join(OUTPUT, name)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"{name}.txt"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
    print(f"read {total} tickets, kept {smallest * len(by_category)} in "
          f"{len(by_category)} balanced categories ({smallest} each)")
    for name, lines in splits.items():
        print(f"{name}: {len(lines)} examples")


if __name__ == "__main__":
    main()
