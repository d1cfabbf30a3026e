"""`cifar-lab arch`: an architecture's layers, output shapes and parameters."""

from __future__ import annotations

from cifar_core.cli.options import runs_dir
from cifar_core.cli.output import print_columns
from cifar_core.model import shapes, specs


def cmd_arch(args) -> int:
    spec = specs.resolve(args.arch, specs.specs_dir(runs_dir(args)))
    if args.json:
        print(spec.to_json())
        return 0
    rows = shapes.layer_rows(spec)
    print(f"{spec.name}: {spec.description}")
    print_columns([list(rows[0])] + [[f"{v:,}" if k == "params" else str(v) for k, v in r.items()] for r in rows],
                  right={"params"})
    print(f"Total parameters: {shapes.param_count(spec):,}")
    return 0
