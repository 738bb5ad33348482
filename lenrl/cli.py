"""`lenrl` console command: `lenrl train`, `lenrl eval`, `lenrl compare`, `lenrl plot`, `lenrl algos`,
`lenrl testbed`, `lenrl edit`, `lenrl merge`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: lenrl train [--algo NAME] [--config FILE] [key.sub=value ...]\n"
            "       lenrl eval --model PATH --benchmarks math500,gsm8k [--budgets 64,128] [...] (lenrl eval -h)\n"
            "       lenrl compare DIR [DIR ...] --out DEST\n"
            "       lenrl plot RUN_DIR [RUN_DIR ...] [--out FILE]   (training curves)\n"
            "       lenrl merge --base B --tuned T --out DIR [--keep 0.25 --scale 0.7]   (DLER weight merging)\n"
            "       lenrl edit directions|steer|apply --model M ... (ThinkEdit; lenrl edit SUB -h)\n"
            "       lenrl algos\n"
            "       lenrl testbed build [NAME] [key=value ...]   (the length-control testbed reasoner)\n"
            "       lenrl testbed compare [NAME] [--out DIR] [...] (lenrl testbed compare -h)"
        )
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        from lenrl.train import main as train_main

        return train_main(rest)
    if cmd == "eval":
        from lenrl.evaluate import main as eval_main

        return eval_main(rest)
    if cmd == "compare":
        from lenrl.evaluate import compare_main

        return compare_main(rest)
    if cmd == "plot":
        from lenrl.trainer.plots import plot_main

        return plot_main(rest)
    if cmd == "merge":
        from lenrl.edit.merge_cli import merge_main

        return merge_main(rest)
    if cmd == "edit":
        return edit(rest)
    if cmd == "algos":
        from lenrl.catalog import markdown

        print(markdown(), end="")
        return 0
    if cmd == "testbed":
        return testbed(rest)
    known = "train, eval, compare, plot, merge, edit, algos, testbed"
    print(f"lenrl: error: unknown command {cmd!r}; available: {known}", file=sys.stderr)
    return 2


def testbed(argv: list[str]) -> int:
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "build":
        from lenrl.testbed.build import build_main

        return build_main(rest)
    if sub == "compare":
        from lenrl.testbed.compare import compare_main

        return compare_main(rest)
    print(f"lenrl: error: lenrl testbed needs build or compare, got {sub!r}", file=sys.stderr)
    return 2


def edit(argv: list[str]) -> int:
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "directions":
        from lenrl.edit.directions import directions_main

        return directions_main(rest)
    if sub == "steer":
        from lenrl.edit.steer import steer_main

        return steer_main(rest)
    if sub == "apply":
        from lenrl.edit.apply import apply_main

        return apply_main(rest)
    print(f"lenrl: error: lenrl edit needs directions, steer or apply, got {sub!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
