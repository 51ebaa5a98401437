"""Seeded random weights of a model's official keys and shapes, for timing a
model whose published weights are not at hand (a GPU machine without a
network): the speed of a network does not depend on its weight values, except
4.0's large-motion branch, which random weights can switch on.

    python3 benchmarks/random_weights.py --model 4.6 --out /tmp/rife-4.6.pkl --seed 0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def write_random_weights(model: str, out: Path, seed: int = 0) -> Path:
    """Build `model`'s network under a fixed seed, save its state dict to out and
    check that the harness's own loader accepts the file."""
    import torch

    from rifebench.models import zoo
    from rifebench.models.weights import load_model

    spec = zoo.get(model)
    if spec.weights_file is None:
        raise ValueError(f"random_weights: --model {model!r} takes no weights "
                         f"(accepted: {', '.join(n for n, s in zoo.MODELS.items() if s.weights_file)})")
    torch.manual_seed(seed)
    state = spec.build()().state_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    load_model(spec, out)  # raises WeightsError if the harness would refuse the file
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a zoo model with weights: 4.0, 4.6 or paper")
    ap.add_argument("--out", required=True, type=Path, help="the .pkl file to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        path = write_random_weights(args.model, args.out, args.seed)
    except KeyError as exc:
        sys.exit(f"random_weights: --model: {exc.args[0]}")
    except ValueError as exc:
        sys.exit(str(exc))
    print(f"wrote random {args.model} weights (seed {args.seed}) to {path}")


if __name__ == "__main__":
    main()
