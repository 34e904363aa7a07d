"""Datasets, vocabularies and batching for seqjax.

Light on purpose: importing ``seqjax.data`` pulls in only numpy and the standard
library; HF ``datasets`` is imported lazily inside the loaders that use it.
Submodules:

- ``fetch``     data directory resolution, dataset registry, download + checksum
- ``vocab``     :class:`Vocab` and :func:`build_vocab`
- ``lm``        word/char language-modelling corpora, ``batchify``, BPTT windows
- ``agnews``    AG News text classification
- ``pairs``     sentence pairs for translation (any source; Tatoeba built in)
- ``batching``  length buckets and padding for variable-length examples

All arrays are numpy; token ids are ``int32``, weights ``float32``.
The download function is ``seqjax.data.fetch.fetch``; it is not re-exported here, so that
``seqjax.data.fetch`` stays the module.
"""

from seqjax.data.fetch import DATASETS, check, data_dir, require
from seqjax.data.vocab import Vocab, build_vocab

__all__ = ["DATASETS", "Vocab", "build_vocab", "check", "data_dir", "require"]
