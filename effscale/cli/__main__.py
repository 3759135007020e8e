from effscale.cli.main import run

run()
