from seqjax.cli import run

run()
