"""ONNX export parity on the paper split: onnxruntime against the torch module.

Fits the baseline and the defended pipeline (package defaults, seed 0) on the train part
of the paper protocol split of a real image folder (128 x 128, leakage-free split
1540/440/220), exports each with :func:`sknnmfdiff.export_onnx` and compares the graph,
run by onnxruntime on the CPU, with :func:`sknnmfdiff.to_torch_module` on the test part
(and the validation part): largest absolute difference of the class probabilities,
identical predictions, NNLS convergence. The defended pipeline is exported both ways:
noise fixed (the noise of its own ``predict_proba``) and noise as a graph input (fed the
noise of the torch module's first call after ``manual_seed(0)``).

    python benchmarks/onnx_parity.py [--data DIR] [--out FILE]
"""

import argparse
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/brain-tumor-mri")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from sknnmfdiff import export_onnx, make_baseline_pipeline, make_paper_pipeline
    from sknnmfdiff.datasets import find_duplicates, load_mri_folder, paper_split
    from sknnmfdiff.onnx_export import check_onnx_export

    bunch = load_mri_folder(args.data, image_size=128, task="binary")
    split = paper_split(bunch, groups=find_duplicates(bunch, kind="near"), random_state=0)
    X, y = bunch.data, bunch.target
    pipes = {"baseline": make_baseline_pipeline(random_state=0),
             "defended": make_paper_pipeline(random_state=0)}
    for pipe in pipes.values():
        pipe.fit(X[split.train], y[split.train])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipe, noise in (("baseline", pipes["baseline"], "fixed"),
                                  ("defended", pipes["defended"], "fixed"),
                                  ("defended", pipes["defended"], "input")):
            t0 = time.perf_counter()
            path = export_onnx(pipe, Path(tmp) / f"{name}-{noise}.onnx", noise=noise)
            t_export = time.perf_counter() - t0
            size_kb = path.stat().st_size / 1024
            for part in ("test", "val"):
                idx = getattr(split, part)
                res = check_onnx_export(pipe, path, X[idx], seed=0)
                acc = None
                if part == "test":
                    import onnxruntime as ort

                    opts = ort.SessionOptions()
                    opts.log_severity_level = 3
                    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                    feeds = {"pixels": X[idx].reshape(-1, 1, 128, 128)}
                    if res["noise"] == "input":
                        purifier = pipe.named_steps["purify"].make_torch_purifier(seed=0)
                        feeds["noise"] = purifier.draw_noise(int(pipe.named_steps["select"].k)).numpy()
                    p = sess.run(["probabilities"], feeds)[0]
                    acc = float(np.mean(pipe.classes_[p.argmax(1)] == y[idx]))
                rows.append((name, res["noise"], part, res["n_images"], res["max_abs_diff"],
                             res["n_disagreements"], res["nnls_converged_fraction"],
                             res["max_abs_diff_predict_proba"], acc, t_export, size_kb,
                             res["seconds_onnx"], res["seconds_torch"]))
    head = ("| pipeline | noise | part | images | max abs diff (ONNX vs torch) | predictions "
            "differing | NNLS converged | max abs diff vs predict_proba | ONNX accuracy | "
            "export s | file kB | onnxruntime s | torch s |\n" + "|---" * 13 + "|")
    lines = [head]
    for r in rows:
        pp = "-" if r[7] is None else f"{r[7]:.2e}"
        acc = "-" if r[8] is None else f"{100 * r[8]:.2f} %"
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.2e} | {r[5]} | "
                     f"{100 * r[6]:.1f} % | {pp} | {acc} | {r[9]:.1f} | {r[10]:.0f} | "
                     f"{r[11]:.3f} | {r[12]:.3f} |")
    text = "\n".join(lines)
    print(text)
    print(f"torch {torch.__version__}, {args.threads} torch thread(s)")
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
