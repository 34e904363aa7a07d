"""Linear baseline for AG News: TF-IDF (unigrams + bigrams) -> logistic regression.

Same split as ``seqjax train agnews:best`` (the experiment's data config and ``seed``:
18,000 train / 2,000 valid / 7,600 test on the 20k offline subset) and the same
tokenizer. C is chosen on the validation split; the test split is scored once.

    python scripts/agnews_baseline.py [--data-dir DIR] [--seed 0] [--set key=value]...

Prints one JSON object. A script, not a seqjax dependency (needs scikit-learn).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from seqjax import config as config_lib
from seqjax.data.textclass import load_text_classes, tokenize


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="agnews config overrides")
    ap.add_argument("--grid", default="1,3,10,30", help="values of C tried on the validation split")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = config_lib.resolve("agnews:best", [f"seed={args.seed}", *args.overrides])
    d = load_text_classes(cfg.data, args.data_dir, cfg.seed)
    vec = TfidfVectorizer(
        tokenizer=tokenize,
        lowercase=False,
        token_pattern=None,
        ngram_range=(1, 2),
        min_df=1,
        sublinear_tf=True,
    )
    x_train = vec.fit_transform(d.train.texts)
    x_valid, x_test = vec.transform(d.valid.texts), vec.transform(d.test.texts)
    valid_acc, models = {}, {}
    for c in [float(v) for v in args.grid.split(",")]:
        models[c] = LogisticRegression(C=c, max_iter=2000).fit(x_train, d.train.labels)
        valid_acc[c] = float(np.mean(models[c].predict(x_valid) == d.valid.labels))
    best_c = max(valid_acc, key=valid_acc.get)
    clf = models[best_c]
    out = {
        "model": "tfidf(1-2gram, sublinear tf) + logistic regression",
        "train": len(d.train.texts),
        "valid": len(d.valid.texts),
        "test": len(d.test.texts),
        "features": x_train.shape[1],
        "valid_acc_by_C": valid_acc,
        "C": best_c,
        "valid_acc": valid_acc[best_c],
        "test_acc": float(np.mean(clf.predict(x_test) == d.test.labels)),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
