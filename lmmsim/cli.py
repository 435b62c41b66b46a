"""Command line: ``lmmsim scenarios``, ``lmmsim simulate``, ``lmmsim montecarlo``, ``lmmsim grade``.

Errors print one line to stderr and exit with status 2; no output file is left behind.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from lmmsim import scenarios  # the commands import what else they need: start-up stays quick


class UsageError(ValueError):
    """A malformed command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise UsageError(message)


def parse_settings(scenario: scenarios.Scenario, settings: list[str]) -> dict[str, Any]:
    """``["n_plots=12", "rho=0.3"]`` -> typed parameters, by the type of each default."""
    params: dict[str, Any] = {}
    defaults = scenario.parameters
    for item in settings:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            example = f"{next(iter(defaults))}={next(iter(defaults.values()))}"
            raise ValueError(f"--set: got {item!r}, expected NAME=VALUE, e.g. --set {example}")
        if name not in defaults:
            raise ValueError(
                f"--set: {name!r} is not a parameter of scenario {scenario.name!r}; expected one of {list(defaults)}"
            )
        params[name] = _convert(name, text.strip(), defaults[name])
    return params


def _convert(name: str, text: str, default: Any) -> Any:
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"--set: {name}={text!r} is not a whole number") from None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--set: {name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"--set: {name}={text!r} is not a finite number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lmmsim", description="Simulate grouped data with known truth.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("scenarios", help="list the scenarios with their parameters and defaults")

    sim = commands.add_parser("simulate", help="simulate a scenario's data")
    sim.add_argument("scenario", help="scenario name (see `lmmsim scenarios`)")
    sim.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="change a parameter")
    sim.add_argument("--seed", type=_nonnegative, help="random seed (one dataset)")
    sim.add_argument("--out", type=Path, help="CSV file for the data")
    sim.add_argument("--truth", type=Path, help="JSON file for the true parameters")
    sim.add_argument("--roster", type=Path, help="CSV with a student_id column (one dataset per student)")
    sim.add_argument("--course-seed", type=_nonnegative, help="course seed (with --roster)")
    sim.add_argument("--outdir", type=Path, help="folder for the students' files (with --roster)")
    sim.add_argument("--force", action="store_true",
                     help="with --roster: replace another roster's files in --outdir (those its answer key lists)")

    mc = commands.add_parser("montecarlo", help="run a Monte Carlo study and print its performance summary")
    mc.add_argument("scenario", help="scenario name (see `lmmsim scenarios`)")
    mc.add_argument("--reps", type=_nonnegative, required=True, help="replications per grid cell")
    mc.add_argument("--seed", type=_nonnegative, required=True, help="root random seed")
    mc.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="change a parameter")
    mc.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...", help="vary a parameter")
    mc.add_argument("--analyses", required=True, metavar="LIST", help="comma-separated, e.g. ols,lmm_t")
    mc.add_argument("--coefs", metavar="LIST", help="fixed effects to report (default: all but the intercept)")
    mc.add_argument("--out", type=Path, required=True, help="CSV file for the per-replication results")
    mc.add_argument("--workers", type=_nonnegative, default=1, help="worker processes (default 1: serial)")
    mc.add_argument("--checkpoint", type=Path, help="folder for checkpoints; run again to resume")

    grade = commands.add_parser("grade", help="grade students' answers against refits of their own datasets")
    grade.add_argument("--answer-key", type=Path, required=True, help="answer_key.json from `simulate --roster`")
    grade.add_argument("--submissions", type=Path, required=True,
                       help="CSV: student_id, parameter, estimate[, se, ci_low, ci_high]")
    grade.add_argument("--out", type=Path, required=True,
                       help="CSV file for the grades (one row per student and parameter)")
    grade.add_argument("--feedback", type=Path, help="folder for one feedback text per student")
    grade.add_argument("--plot", type=Path, help="SVG file for the class's estimates around the truth")
    return parser


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a non-negative whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {value}, expected a non-negative whole number")
    return value


def _list_scenarios() -> str:
    lines = []
    for scenario in scenarios.SCENARIOS.values():
        lines.append(f"{scenario.name}: {scenario.summary}")
        lines.append(f"  model: {scenario.model.lme4}")
        lines.extend(f"  {name} = {default!r}" for name, default in scenario.parameters.items())
    return "\n".join(lines)


def _simulate(args: argparse.Namespace) -> str:
    from lmmsim.course import course_datasets, read_roster
    from lmmsim.course.roster import stale_files
    from lmmsim.io import csv_text, write_files
    from lmmsim.simulate import simulate

    scenario = scenarios.get(args.scenario)
    params = parse_settings(scenario, args.set)
    if args.roster is not None:
        for flag, value in (("--course-seed", args.course_seed), ("--outdir", args.outdir)):
            if value is None:
                raise UsageError(f"{flag} is required with --roster")
        for flag, value in (("--seed", args.seed), ("--out", args.out), ("--truth", args.truth)):
            if value is not None:
                raise UsageError(f"{flag} cannot be combined with --roster")
        files = course_datasets(scenario, params, read_roster(args.roster), args.course_seed)
        if not args.outdir.parent.is_dir():
            raise ValueError(f"--outdir: folder {str(args.outdir.parent)!r} does not exist")
        if args.outdir.exists() and not args.outdir.is_dir():
            raise ValueError(f"--outdir: {str(args.outdir)!r} is a file, expected a folder")
        stale = stale_files(args.outdir, files, args.force)
        created = not args.outdir.exists()
        args.outdir.mkdir(exist_ok=True)
        try:
            write_files({args.outdir / name: text for name, text in files.items()})
        except ValueError:
            if created:
                args.outdir.rmdir()
            raise
        for path in stale:  # the previous roster's students who are not in this one
            path.unlink()
        n = (len(files) - 1) // 2
        return f"wrote {n} datasets, {n} answer templates and answer_key.json to {args.outdir}"
    for flag, value in (("--seed", args.seed), ("--out", args.out), ("--truth", args.truth)):
        if value is None:
            raise UsageError(f"{flag} is required (or use --roster for coursework)")
    if args.force:
        raise UsageError("--force applies only with --roster")
    if args.out.resolve() == args.truth.resolve():
        raise UsageError("--out and --truth must be different files")
    sim = simulate(scenario(**params), args.seed, provenance={"scenario": scenario.name, "parameters": params})
    write_files({args.out: csv_text(sim.data), args.truth: sim.truth.to_json()})
    return f"wrote {len(sim.data)} rows to {args.out} and the truth to {args.truth}"


def _montecarlo(args: argparse.Namespace) -> str:
    from concurrent.futures import ProcessPoolExecutor

    from lmmsim import montecarlo
    from lmmsim.io import csv_text, write_files
    from lmmsim.summary import format_summary, summarise

    scenario = scenarios.get(args.scenario)
    params = parse_settings(scenario, args.set)
    grid: dict[str, list] = {}
    for item in args.grid:
        name, sep, text = item.partition("=")
        values = [v.strip() for v in text.split(",")]
        if not sep or not name.strip() or not all(values) or name.strip() in grid:
            raise UsageError(f"--grid: got {item!r}, expected NAME=V1,V2,... once per parameter")
        try:
            grid[name.strip()] = [parse_settings(scenario, [f"{name}={v}"])[name.strip()] for v in values]
        except ValueError as err:
            raise ValueError(str(err).replace("--set:", "--grid:", 1)) from None
    if not args.out.parent.is_dir() or args.out.is_dir():
        raise ValueError(f"--out: {str(args.out)!r} is not a file in an existing folder")
    if args.workers < 1:
        raise UsageError(f"--workers: got {args.workers}, expected a whole number >= 1")
    options = dict(
        reps=args.reps, seed=args.seed, analyses=args.analyses, params=params, grid=grid,
        coefs=None if args.coefs is None else [c.strip() for c in args.coefs.split(",")],
        checkpoint=args.checkpoint, progress=sys.stderr.isatty(),
    )
    if args.workers == 1:
        results = montecarlo.run(scenario, **options)
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            results = montecarlo.run(scenario, executor=pool, **options)
    write_files({args.out: csv_text(results)})
    table = format_summary(summarise(results)).to_string(index=False)
    return f"{table}\nwrote {len(results)} rows to {args.out}"


def _grade(args: argparse.Namespace) -> str:
    from lmmsim.course import grade, report, submissions
    from lmmsim.io import csv_text, write_files

    if args.plot is not None and args.plot.suffix.lower() != ".svg":
        raise UsageError(f"--plot: got {str(args.plot)!r}, expected a file name ending in .svg")
    if args.out.resolve() in (args.submissions.resolve(), args.answer_key.resolve()):
        raise UsageError("--out must differ from --submissions and --answer-key")
    if args.feedback is not None and not args.feedback.is_dir():
        raise ValueError(f"--feedback: {str(args.feedback)!r} is not an existing folder")
    answers = submissions.read_submissions(args.submissions)
    grades = grade.grade(answers, grade.references(grade.read_key(args.answer_key)))
    files = {args.out: csv_text(grades)}
    if args.feedback is not None:
        for sid in grades["student_id"][grades["max_points"] > 0].unique():  # the key's students
            files[args.feedback / f"{sid}.txt"] = report.feedback(grades, sid)
    if args.plot is not None:
        files[args.plot] = report.svg_text(report.class_plot(grades))
    write_files(files)
    return f"{report.class_summary(grades)}\nwrote {len(grades)} rows to {args.out}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "scenarios":
            print(_list_scenarios())
        elif args.command == "simulate":
            print(_simulate(args))
        elif args.command == "montecarlo":
            print(_montecarlo(args))
        elif args.command == "grade":
            print(_grade(args))
    except (ValueError, OSError) as err:  # UsageError included; OSError: a file system refusal
        message = " ".join(str(err).split())
        print(f"lmmsim: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f"; {err}" if str(err) else ""  # e.g. "N of M replications saved in FOLDER"
        print(f"lmmsim: interrupted{detail}", file=sys.stderr)
        return 130  # 128 + SIGINT, as shells report it
    return 0


if __name__ == "__main__":
    sys.exit(main())
