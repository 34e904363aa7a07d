"""Datasets, vocabularies and batching for seqjax.

Light on purpose: importing ``seqjax.data`` pulls in only numpy and the standard
library; HF ``datasets`` is imported lazily inside the loaders that use it.
Submodules:

- ``fetch``     data directory resolution, dataset registry, download + checksum
- ``corpora``   the built-in corpora, the splits and column keys every source shares
- ``sources``   rows of any source through HF ``datasets`` (files, disk, the Hub, generated)
- ``carving``   a missing valid/test split carved from train, seeded
- ``arrays``    sequence basics as arrays (``.npz`` or array columns)
- ``synthetic`` the registry of generated sources
- ``vocab``     :class:`Vocab` and :func:`build_vocab`
- ``lm``        word/char language-modelling corpora, ``batchify``, BPTT windows
- ``textclass`` text classification rows (AG News built in)
- ``pairs``     sentence pairs for translation (any source; Tatoeba built in)
- ``batching``  length buckets and padding for variable-length examples
- ``vbptt``     variable-length BPTT windows

All arrays are numpy; token ids are ``int32``, weights ``float32``.
The download function is ``seqjax.data.fetch.fetch``; it is not re-exported here, so that
``seqjax.data.fetch`` stays the module.
"""

from seqjax.data.fetch import DATASETS, check, data_dir, require
from seqjax.data.vocab import Vocab, build_vocab

__all__ = ["DATASETS", "Vocab", "build_vocab", "check", "data_dir", "require"]
