"""Shared defaults of the language-model experiments (ptb_lm.py, char_lm.py)."""
from seqjax.config import base_config


def lm_config():
    """Base config of task=lm. LM-specific keys:

    data.corpus          ptb | ptb_char | shakespeare | toy
    data.bptt            truncated-BPTT window (time steps per step)
    data.test_batch_size parallel streams for the test split (0: data.eval_batch_size)
    data.max_tokens      keep the first N tokens of each split (0: all)
    data.sum_over_time   objective summed over the BPTT steps, averaged over the batch
                         (TF sequence_loss, Zaremba's "lr 1") instead of the per-token mean
    model.embed          embedding size
    model.tie_weights    softmax shares the embedding matrix
    sample.prompt        prompt of the sample written to summary.json (char models)
    sample.length        characters sampled
    sample.temperature   sampling temperature (0: greedy)
    sample.prompt_on_finish  write a sample into summary.json at the end
    """
    c = base_config()
    c.task = "lm"
    c.data.update(dict(corpus="ptb", bptt=20, test_batch_size=0, max_tokens=0, sum_over_time=False))
    c.model.update(dict(embed=200, tie_weights=False))
    c.sample = dict(prompt="", length=300, temperature=0.8, prompt_on_finish=True)
    return c
