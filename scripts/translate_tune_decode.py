"""Choose beam size and length penalty on the *valid* split, then score the test split once.

    python scripts/translate_tune_decode.py WORKDIR [--beams 5,10] [--alphas 0,0.6,1.0]

For every (beam, alpha) the run's best checkpoint decodes the valid split
(``TranslateTask.evaluate_translation``); the setting with the highest valid per-pair BLEU
is then applied to the test split, which is decoded with that setting only. Prints a
Markdown table (valid BLEU per setting) and one JSON line with the chosen setting and its
test scores. Data as for ``seqjax eval`` (``$SEQJAX_DATA`` or ``--data-dir``).
"""

from __future__ import annotations

import argparse
import json

from seqjax.training.inference import load_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--beams", default="5,10")
    ap.add_argument("--alphas", default="0,0.6,1.0")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    run = load_run(args.workdir, data_dir=args.data_dir)
    task, params = run.engine.task, run.params

    def scores(split, beam, alpha):
        with task.cfg.unlocked():
            task.cfg.decode.alpha = alpha
        task.decode_fn.cache_clear()  # the decoder is compiled with the length penalty in it
        name = "greedy" if beam == 1 else f"beam{beam}"
        return task.evaluate_translation(params, split, (beam,))[name]

    print(
        "| beam | alpha | valid BLEU | valid multi-ref BLEU | valid chrF |\n"
        "| ---: | ---: | ---: | ---: | ---: |"
    )
    results = {}
    for beam in (int(b) for b in args.beams.split(",")):
        for alpha in (float(a) for a in args.alphas.split(",")):
            r = results[beam, alpha] = scores("valid", beam, alpha)
            print(f"| {beam} | {alpha} | {r['bleu']} | {r['bleu_multiref']} | {r['chrf']} |", flush=True)
    beam, alpha = max(results, key=lambda k: results[k]["bleu"])
    test = scores("test", beam, alpha)
    print(
        json.dumps(
            {
                "workdir": args.workdir,
                "chosen_on_valid": {"beam": beam, "alpha": alpha},
                "valid": results[beam, alpha],
                "test": test,
            }
        )
    )


if __name__ == "__main__":
    main()
