"""`make bench-al`: label efficiency of every selection strategy, through the simulator.

Fashion-MNIST (Debian's package), the pretrained encoder + the service's learner, budgets
10..500, 5 seeds; every registered strategy plus random and the class-balanced oracle. Prints
mean ± std per budget and the normalised area under the curve, writes bench/results/al.json
(the simulator's format plus "machine") and al.png.
"""

from __future__ import annotations

import argparse
import re

from bench.common import RESULTS, write_results


def main() -> None:
    from models_zoo import selection, simulate
    from models_zoo.train import PretrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument(
        "--strategies",
        default="all",
        help="comma-separated, or 'all'; auto@K[:WARM] is auto switching at K labels per class (to WARM)",
    )
    p.add_argument("--budgets", default="10,20,50,100,200,500")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--pretrain-minutes", type=float, default=5.0)
    p.add_argument("--cache-dir", default=".cache/models_zoo")
    p.add_argument(
        "--stop-set",
        type=int,
        default=0,
        help="also judge the stop rule on this many pool items per seed (budgets in even rounds, e.g. "
        "--budgets 10,20,50,$(seq -s, 100 100 3000) --stop-set 2000 --name stop_rule)",
    )
    p.add_argument(
        "--name", default="al", help="results go to bench/results/NAME.json and NAME.png (e.g. al_switch)"
    )
    args = p.parse_args()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        p.error(f"--name {args.name!r}: letters, digits, '_' and '-' only (a file name under bench/results)")

    names = selection.names() + ["balanced"] if args.strategies == "all" else args.strategies.split(",")
    cfg = simulate.SimulationConfig(
        data=args.data,
        strategies=names,
        budgets=[int(b) for b in args.budgets.split(",")],
        seeds=args.seeds,
        stop_set=args.stop_set,
        pretrain=PretrainConfig(max_minutes=args.pretrain_minutes),
        cache_dir=args.cache_dir,
    )
    result = simulate.run(cfg)
    features = result["records"][0]["features"]
    print(f"pretrain: {result['pretrain']}")
    print(simulate.format_table(result["summary"], features))
    summary = result["summary"]
    if "auto" in summary and "random" in summary and "balanced" in summary:
        print("\nauto vs random / vs class-balanced oracle (points):")
        for b, cell in summary["auto"]["budgets"].items():
            r = summary["random"]["budgets"].get(b, {}).get("mean")
            o = summary["balanced"]["budgets"].get(b, {}).get("mean")
            print(f"  {b:>4} labels: {100 * (cell['mean'] - r):+5.1f} / {100 * (cell['mean'] - o):+5.1f}")
    extra = {"stop_rule": result["stop_rule"]} if "stop_rule" in result else {}
    if extra:
        print("\nstop rule (kappa >= 0.99 over 3 rounds) against the plateau (1 point):")
        print(simulate.format_stop_rule(result["stop_rule"]))
    path = write_results(
        args.name, result["records"], pretrain=result["pretrain"], summary=summary, data=args.data, **extra
    )
    simulate.plot(summary, RESULTS / f"{args.name}.png", title=f"{args.data} ({features})")
    print(f"wrote {path} and {RESULTS / f'{args.name}.png'}")


if __name__ == "__main__":
    main()
