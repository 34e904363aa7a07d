"""Process plumbing the ``seqjax`` executable applies before it runs a command: glibc's
malloc settings (``malloc``), XLA:CPU's schedule (``xla_flags``), the supervisor of
multi-process runs (``supervisor``) and the log and report filters (``logs``). Nothing in the
library imports these; the executable (:mod:`seqjax.app.cli`) and ``seqjax.tune()`` do."""
