"""The command line: every command, its options and the function that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifar_core.cli import mistakes
from cifar_core.cli.architectures import cmd_arch
from cifar_core.cli.options import add_executor_options, add_search_options, add_train_options
from cifar_core.cli.results import (
    cmd_compare,
    cmd_evaluate,
    cmd_explain,
    cmd_layers,
    cmd_note,
    cmd_pin,
    cmd_runs,
    cmd_show,
    cmd_tag,
)
from cifar_core.cli.serve import cmd_serve
from cifar_core.cli.studies import (
    cmd_reproduce,
    cmd_studies,
    cmd_study,
    cmd_study_report,
    cmd_study_resume,
    cmd_study_stop,
)
from cifar_core.cli.training import cmd_import, cmd_resume, cmd_stop, cmd_train
from cifar_core.engine import importing
from cifar_core.store import runs
from cifar_core.studies import plans


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cifar-lab", description=__doc__)
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where runs live (default: $CIFAR_LAB_RUNS or artifacts/runs)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("arch", parents=[common], help="layer table and parameter count of an architecture")
    p.add_argument("arch", help="preset name, saved spec name, or path to a .json spec")
    p.add_argument("--json", action="store_true", help="print the spec as JSON instead")
    p.set_defaults(func=cmd_arch)

    p = sub.add_parser("train", parents=[common], help="train one architecture; prints the run directory")
    p.add_argument("--arch", default=None, help="preset, saved spec or .json file (default: baseline; fast with "
                                                 "--recipe fast)")
    p.add_argument("--name", help="run name (default: the architecture's)")
    p.add_argument("--detach", action="store_true", help="return at once; training goes on in the background")
    add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", parents=[common], help="start the dashboard (localhost only unless --host)")
    p.add_argument("--host", default="localhost", help="address to listen on; anything but localhost shares the "
                   "dashboard read-only")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--allow-writes", action="store_true", help="let a shared dashboard train, stop, rename and delete")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("runs", parents=[common], help="table of runs (filters combine)")
    p.add_argument("--tag", action="append", default=[], help="only runs with this tag (repeat for several)")
    p.add_argument("--arch", action="append", default=[], help="only runs of this architecture")
    p.add_argument("--status", action="append", default=[], help="only runs in this status")
    p.add_argument("--data", action="append", default=[], help="only runs on this kind of data (image-folder, ...)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("tag", parents=[common], help="add (or --remove) tags on a run: a lab notebook's labels")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("tags", nargs="*", help=f"tags to add ({runs.TAG_RULE})")
    p.add_argument("--remove", action="append", default=[], metavar="TAG", help="a tag to take off")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("note", parents=[common], help="set a run's free-text note ('' clears it)")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("text")
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("pin", parents=[common], help="pin a run as the baseline Compare shows first")
    p.add_argument("run", nargs="?", help="run id (or a unique prefix of it); leave out with --none")
    p.add_argument("--none", action="store_true", help="unpin the baseline")
    p.set_defaults(func=cmd_pin)

    p = sub.add_parser("study", parents=[common], help="train a study's runs one by one in the background")
    p.add_argument("kind", choices=plans.KINDS)
    p.add_argument("--arch", default="baseline", help="the architecture a `seeds` study repeats")
    p.add_argument("--detach", action="store_true", help="return at once; the study goes on in the background")
    add_train_options(p)
    add_executor_options(p)
    add_search_options(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("studies", parents=[common], help="table of studies")
    p.set_defaults(func=cmd_studies)
    # Commands that act on one run or one study, named by id or unique prefix.
    for name, func, ref, help_ in (
        ("show", cmd_show, "run", "a run's settings, curves and results"),
        ("evaluate", cmd_evaluate, "run", "evaluate a run's saved model on the test set again"),
        ("stop", cmd_stop, "run", "stop a training run, keeping its best weights"),
        ("resume", cmd_resume, "run", "resume an interrupted run from its last epoch"),
        ("study-resume", cmd_study_resume, "study", "continue a study with its unfinished runs"),
        ("study-stop", cmd_study_stop, "study", "stop a study (the current run keeps its best weights)"),
        ("study-report", cmd_study_report, "study", "write a study's report.md and charts"),
    ):
        p = sub.add_parser(name, parents=[common], help=help_)
        p.add_argument(ref, help=f"{ref} id (or a unique prefix of it)")
        if name == "show":
            p.add_argument("--json", action="store_true")
        if name in ("resume", "study-resume"):
            p.add_argument("--detach", action="store_true")
        p.set_defaults(func=func)

    p = sub.add_parser("layers", parents=[common], help="what each layer did while the run learned: activations, dead "
                       "channels, gradient and weight norms, updates, batch-norm drift (per layer, at one record)")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("--epoch", type=float, default=None, help="the record nearest this many epochs (default: the last; "
                   "0: before training)")
    p.add_argument("--json", action="store_true", help="every record as JSON")
    p.set_defaults(func=cmd_layers)

    mistakes.add_commands(sub, common)

    p = sub.add_parser("compare", parents=[common], help="two runs: test accuracy with its 95%% interval, and "
                       "McNemar's exact test of whether one model is more accurate on the same test images")
    p.add_argument("run_a", help="run id (or a unique prefix of it)")
    p.add_argument("run_b", help="run id (or a unique prefix of it)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("explain", parents=[common], help="Grad-CAM of the test images a run takes for another "
                       "class (cat taken for dog by default), as a PNG sheet")
    p.add_argument("run", help="run id (or a unique prefix of it)")
    p.add_argument("--true", default="cat", help="the images' true class (default: cat)")
    p.add_argument("--pred", default="dog", help="the class the run predicted for them (default: dog)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG (default: here)")
    p.add_argument("--layer", help="conv layer to explain (default: the last one's output)")
    p.add_argument("--count", type=int, default=24, help="images, the surest mistakes first (default: 24)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("import", parents=[common], help="a Keras model trained elsewhere (.keras, .h5) as a run, "
                       "evaluated on the test set; prints the run directory")
    p.add_argument("model", type=Path, help="the model file (copied into the run; never changed)")
    p.add_argument("--name", help="run name (default: imported-<file name>)")
    p.add_argument("--data", default=None, help="data source whose test set it is evaluated on "
                                               "(default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--input-scale", default="auto", choices=importing.SCALES, help=importing.SCALE_HELP)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("reproduce", parents=[common], help="run the seed study and compare with its published figures")
    p.add_argument("--data", default=None, help="data source (default: $CIFAR_LAB_DATA or the Keras cache)")
    p.add_argument("--subset", type=int, default=None, help="train on N stratified training images (quick check)")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate (and, by the seed protocol, validate) on N stratified test images (quick check)")
    p.add_argument("--seeds", default=str(plans.REPRODUCE_SEEDS), metavar="N|LIST",
                   help=f"seeds per model (default {plans.REPRODUCE_SEEDS}: mean ± std against the published figure)")
    p.add_argument("--study", default=None, help="report on this existing seed study instead of training anew")
    add_executor_options(p)
    p.set_defaults(func=cmd_reproduce)
    return parser
