from seqjax.app.cli import run

run()
