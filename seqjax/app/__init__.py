"""The application: the ``seqjax`` command (``cli``, the inference ``commands``, ``bench``,
``sweep``) and the Python API (``api``, re-exported lazily by ``seqjax``)."""
