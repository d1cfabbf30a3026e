"""`cifar-lab`: the parser, the options several commands share, terminal output, and one module per command group."""
