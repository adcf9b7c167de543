"""``cnnkit genomics ...`` through the real entry point."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from cnnkit.cli.main import main


def _write_csv(tmp_path, n=80, p=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, p))
    y = x[:, :4].sum(1) + rng.normal(size=n)
    head = "," + ",".join(f"rs{j}" for j in range(p))  # R style: unnamed id column
    rows = [f"s{i}," + ",".join(map(str, r)) for i, r in enumerate(x)]
    (tmp_path / "g.csv").write_text(head + "\n" + "\n".join(rows) + "\n")
    lines = [f"s{i},{v:.5f},{-v:.5f}" for i, v in enumerate(y)]
    (tmp_path / "p.csv").write_text("id,yield,neg\n" + "\n".join(lines[::-1]) + "\n")
    return tmp_path / "g.csv", tmp_path / "p.csv"


def test_cv_json_fields_and_report(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path)
    out = tmp_path / "cv"
    args = [
        "genomics",
        "cv",
        str(geno),
        str(pheno),
        "--pheno-col",
        "yield",
        "--methods",
        "gblup,ridge",
        "--folds",
        "3",
        "--repeats",
        "1",
        "--out",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"n", "p", "folds", "repeats", "methods", "paired", "ceiling"} <= set(res)
    assert [m["method"] for m in res["methods"]] == ["gblup", "ridge"]
    assert res["methods"][0]["r_mean"] > 0.5 and res["ceiling"] is None
    assert res["paired"][0]["method"] == "ridge" and "r_diff_se" in res["paired"][0]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    b64 = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "cv.json").read_text())["n"] == 80
    assert res["snps_dropped_max"] == 0


def test_train_predict_explain_run_folder(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path)
    run = tmp_path / "run"
    common = ["--epochs", "3", "--batch-size", "32", "--patience", "2", "--json"]
    assert main(["genomics", "train", str(geno), str(pheno), "--out", str(run), *common]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "snp_cnn1d" and trained["n"] == 80
    assert {p.name for p in run.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "preprocessor.safetensors",
        "history.csv",
    }
    assert not list(run.glob("*.pt")) and not list(run.glob("*.pkl"))
    assert main(["genomics", "predict", str(run), str(geno), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 80 and preds[0]["sample_id"] == "s0"
    y = {ln.split(",")[0]: float(ln.split(",")[1]) for ln in pheno.read_text().splitlines()[1:]}
    r = np.corrcoef([p["prediction"] for p in preds], [y[p["sample_id"]] for p in preds])[0, 1]
    assert r > 0.5  # in-sample, starts from GBLUP
    png = tmp_path / "sal.png"
    assert main(["genomics", "explain", str(run), "--out", str(png), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert png.read_bytes()[:4] == b"\x89PNG" and len(res["top_loci"]) == 10
    assert main(["genomics", "train", str(geno), str(pheno), "--out", str(run)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_simulate_then_cv_reports_the_ceiling(tmp_path, capsys):
    sim = tmp_path / "sim"
    args = [
        "genomics",
        "simulate",
        "--n",
        "60",
        "--snps",
        "50",
        "--h2",
        "0.5",
        "--trait",
        "local-epistasis",
        "--n-qtl",
        "10",
        "--seed",
        "1",
        "--out",
        str(sim),
        "--json",
    ]
    assert main(args) == 0
    paths = json.loads(capsys.readouterr().out)
    assert (sim / "truth.json").exists() and paths["genotypes"].endswith("geno.bed")
    cv = [
        "genomics",
        "cv",
        paths["genotypes"],
        paths["phenotypes"],
        "--methods",
        "gblup",
        "--folds",
        "2",
        "--repeats",
        "1",
        "--json",
    ]
    assert main(cv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ceiling"] == pytest.approx(0.5**0.5) and res["p"] == 50


def test_errors_are_one_line(tmp_path, capsys):
    geno, _ = _write_csv(tmp_path)
    (tmp_path / "bad.csv").write_text("id,y\nnobody,1\n")
    assert main(["genomics", "cv", str(geno), str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "'s0'" in err
    assert main(["genomics", "cv", str(geno), str(tmp_path / "p.csv"), "--methods", "svm"]) == 2
    assert "methods must be" in capsys.readouterr().err
    assert main(["genomics", "cv", str(tmp_path / "none.bed"), str(tmp_path / "p.csv")]) == 2
    assert "not found" in capsys.readouterr().err


def test_kernel_model_train_and_predict_with_reliabilities(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path)
    lines = pheno.read_text().splitlines()
    pheno.write_text("\n".join(lines[:-5]) + "\n")  # 5 lines genotyped only
    run = tmp_path / "gb"
    args = ["genomics", "train", str(geno), str(pheno), "--model", "gblup", "--out", str(run)]
    assert main([*args, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == "gblup" and res["n"] == 75 and res["n_predicted"] == 5
    assert 0 < res["h2"] < 1 and res["h2_se"] > 0
    assert main(args) == 2 and "pass --overwrite" in capsys.readouterr().err
    out = tmp_path / "pred.csv"
    assert main(["genomics", "predict", str(run), str(geno), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "sample_id,prediction,gebv,reliability" and len(rows) == 81
    capsys.readouterr()
    assert main(["genomics", "explain", str(run), "--out", str(tmp_path / "e.png"), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top_loci"]
    assert {t["snp_id"] for t in top[:4]} <= {"rs0", "rs1", "rs2", "rs3", "rs4", "rs5"}


def test_cv_with_fixed_effects_fold_file_and_groups(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path)
    rows = pheno.read_text().splitlines()
    fam = {f"s{i}": f"F{i % 4}" for i in range(80)}
    pheno.write_text(rows[0] + ",family\n" + "".join(f"{r},{fam[r.split(',')[0]]}\n"
                                                    for r in rows[1:]))  # fmt: skip
    (tmp_path / "folds.csv").write_text("id,fold\n" + "".join(f"s{i},{i % 3}\n" for i in range(80)))
    base = ["genomics", "cv", str(geno), str(pheno), "--methods", "gblup,rkhs,ridge", "--json"]
    assert main([*base, "--fixed", "family", "--fold-file", str(tmp_path / "folds.csv")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (
        res["scheme"] == "fold-file" and res["folds"] == 3 and res["fixed"]["factors"] == ["family"]
    )
    assert [m["method"] for m in res["methods"]] == ["gblup", "rkhs", "ridge"]
    assert main([*base, "--group-col", "family"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scheme"] == "leave-group-out" and res["folds"] == 4
    assert main([*base, "--fixed", "nope"]) == 2
    assert "'nope' is not a column" in capsys.readouterr().err


def test_gwas_finds_the_causal_markers_and_cv_shows_its_plots(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path, n=150, p=40)
    out = tmp_path / "gwas"
    args = ["genomics", "gwas", str(geno), str(pheno), "--pheno-col", "yield", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {t["snp_id"] for t in res["top"][:4]} == {"rs0", "rs1", "rs2", "rs3"}
    assert res["top"][0]["p"] < res["threshold"] and res["kinship"] is True
    csv_rows = (out / "gwas.csv").read_text().splitlines()
    assert csv_rows[0] == "snp_id,effect,se,p" and len(csv_rows) == 41
    assert (out / "manhattan.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["genomics", "gwas", str(geno), str(pheno), "--pheno-col", "yield,neg",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "tests one trait column" in capsys.readouterr().err
    cv = ["genomics", "cv", str(geno), str(pheno), "--pheno-col", "yield", "--methods", "gblup",
          "--folds", "3", "--repeats", "1", "--gwas"]  # fmt: skip
    assert main(cv) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main([*cv, "--out", str(tmp_path / "cv"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["gwas"]["top"][0]["snp_id"] in {"rs0", "rs1", "rs2", "rs3"}
    html = (tmp_path / "cv" / "report.html").read_text()
    assert 'alt="Manhattan plot"' in html and 'alt="QQ plot"' in html


def test_networks_without_early_stopping_train_their_deep_path(tmp_path, capsys):
    geno, pheno = _write_csv(tmp_path)
    cv = ["genomics", "cv", str(geno), str(pheno), "--pheno-col", "yield", "--methods", "mlp",
          "--folds", "3", "--repeats", "1", "--epochs", "3", "--no-early-stopping",
          "--json"]  # fmt: skip
    assert main(cv) == 0
    res = json.loads(capsys.readouterr().out)
    own = next(p for p in res["paired"] if p["against"] == "mlp_linear")
    assert own["r_diff_mean"] != 0.0  # the dense path changed the predictions
    run = tmp_path / "run"
    train = ["genomics", "train", str(geno), str(pheno), "--pheno-col", "yield", "--model",
             "snp_mlp", "--epochs", "4", "--no-early-stopping", "--out", str(run),
             "--json"]  # fmt: skip
    assert main(train) == 0
    capsys.readouterr()
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["early_stopping"] is False and config["epochs_run"] == 4
    assert main(["genomics", "predict", str(run), str(geno), "--json"]) == 0
