"""The Monte Carlo engine: seeds, fast path, executors, checkpoints, failures, CLI."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lmmsim import Design, ModelSpec, scenarios, simulate
from lmmsim import analyses as an
from lmmsim import montecarlo as mc
from lmmsim.cli import main
from lmmsim.fit.exact import fit_block
from lmmsim.fit.exact.block_layout import model_layout

SMALL = {"n_clusters": 6, "cluster_size": 4}
# A general-path study (statsmodels, dataset by dataset) and a fast-path one.
GENERAL = dict(params=SMALL, reps=6, seed=5, analyses="ols,lmm_wald", chunk_size=2, fast=False, progress=False)
FAST = dict(params=SMALL, grid={"beta1": [0.0, 1.0]}, reps=40, seed=5, analyses="ols,lmm_t,lrt_vc", chunk_size=10,
            progress=False)


class Interrupt(Exception):
    pass


def _flaky_fit(data, model, coefs):
    if data[model.outcome].iloc[0] > 0:
        raise RuntimeError("boom")
    return an.ANALYSES["ols"].fit(data, model, coefs)


def _flaky_batch(fits, coefs):
    if (fits.batch.y[:, 0] > 0).any():
        raise RuntimeError("boom")
    return an.ANALYSES["ols"].batch(fits, coefs)


FLAKY = an.Analysis("flaky", "OLS that fails when the first outcome is positive", _flaky_fit, _flaky_batch,
                    needs=("ols",))


@pytest.fixture(scope="module")
def general():
    return mc.run(scenarios.cluster_trial, **GENERAL)


@pytest.fixture(scope="module")
def fast():
    return mc.run(scenarios.cluster_trial, **FAST)


def test_table_layout(fast):
    assert list(fast.columns) == ["beta1", *mc.RESULT_COLUMNS]
    # 2 cells x 40 reps x (ols: 2, lmm_t: 2, lrt_vc: 1 rows)
    assert len(fast) == 2 * 40 * 5
    assert fast.groupby("beta1")["cell"].unique().map(list).to_dict() == {0.0: [0], 1.0: [1]}
    first = fast.iloc[:5]
    assert list(first["analysis"]) == ["ols", "ols", "lmm_t", "lmm_t", "lrt_vc"]
    assert list(first["parameter"]) == ["treatment", "x", "treatment", "x", "sd(Intercept|cluster)"]
    assert fast.query("cell == 1 and parameter == 'treatment'")["truth"].eq(1.0).all()
    assert set(fast["status"]) <= {"ok", "boundary"}


def test_fast_path_draws_what_simulate_draws():
    design = scenarios.cluster_trial(**SMALL)
    seeds = [mc.replication_seed(3, 1, r) for r in range(3)]
    batch = mc.simulate_batch(design, scenarios.cluster_trial.model, seeds)
    for r, seed in enumerate(seeds):
        y, X, groups = an.design_matrices(simulate(design, seed).data, scenarios.cluster_trial.model)
        np.testing.assert_allclose(batch.y[r], y, rtol=1e-13, atol=1e-12)
        np.testing.assert_array_equal(batch.X[r], X.to_numpy())
        np.testing.assert_array_equal(batch.groups, groups)


def test_fast_and_general_paths_agree(general):
    fast = mc.run(scenarios.cluster_trial, **{**GENERAL, "fast": True})
    both = general.merge(fast, on=["rep", "analysis", "parameter"], suffixes=("", "_fast"))
    assert len(both) == len(general)
    ok = both.query("status == 'ok' and status_fast == 'ok'")
    assert len(ok) >= len(both) // 2
    np.testing.assert_allclose(ok["estimate"], ok["estimate_fast"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ok["p_value"], ok["p_value_fast"], rtol=1e-3, atol=1e-6)


def test_same_seed_same_results_whatever_the_chunks(general, fast):
    assert_frame_equal(mc.run(scenarios.cluster_trial, **{**GENERAL, "chunk_size": 4}), general)
    assert_frame_equal(mc.run(scenarios.cluster_trial, **FAST), fast)
    other = mc.run(scenarios.cluster_trial, **{**FAST, "seed": 6})
    assert not np.allclose(other["estimate"], fast["estimate"])
    # reps are seeded individually: a longer run starts with the shorter one
    longer = mc.run(scenarios.cluster_trial, **{**FAST, "reps": 50})
    assert_frame_equal(longer.query("rep < 40").reset_index(drop=True), fast)


def test_dataset_reproduces_a_replication(fast):
    sim = mc.dataset(scenarios.cluster_trial, seed=5, rep=7, cell=1, params=SMALL, grid=FAST["grid"])
    row = fast.query("cell == 1 and rep == 7 and analysis == 'ols' and parameter == 'x'")
    ols = an.ANALYSES["ols"](sim.data, scenarios.cluster_trial.model, ["x"])
    assert ols["estimate"].iloc[0] == pytest.approx(row["estimate"].iloc[0], rel=1e-10)


def test_executors_give_identical_results(general, fast):
    with ProcessPoolExecutor(2) as pool:
        assert_frame_equal(mc.run(scenarios.cluster_trial, executor=pool, **GENERAL), general)
        assert_frame_equal(mc.run(scenarios.cluster_trial, executor=pool, **FAST), fast)


def test_dask_cluster_gives_identical_results(general, fast):
    distributed = pytest.importorskip("distributed")
    import dask

    # forked workers start in a fraction of a second (spawned ones take ~10 s here)
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}), distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            assert_frame_equal(mc.run(scenarios.cluster_trial, executor=client, **GENERAL), general)
            assert_frame_equal(mc.run(scenarios.cluster_trial, executor=client, **FAST), fast)


def _stop_after(k, calls):
    def callback(done, total):
        calls.append(done)
        if len(calls) == k:
            raise Interrupt

    return callback


@pytest.mark.parametrize("options", [FAST, {**GENERAL, "analyses": [FLAKY, "ols"]}], ids=["fast", "general"])
def test_interrupted_run_resumes_to_the_same_table(tmp_path, options):
    folder = tmp_path / "checkpoint"
    calls = []
    with pytest.raises(Interrupt):
        mc.run(scenarios.cluster_trial, **options, checkpoint=folder, on_chunk=_stop_after(2, calls))
    assert len(list(folder.glob("cell*.csv"))) == 2
    resumed_calls = []
    resumed = mc.run(scenarios.cluster_trial, **options, checkpoint=folder, on_chunk=lambda d, t: resumed_calls.append(d))
    chunks = (2 if "grid" in options else 1) * -(-options["reps"] // options["chunk_size"])
    assert len(resumed_calls) == chunks - 2  # finished chunks were not redone
    assert_frame_equal(resumed, mc.run(scenarios.cluster_trial, **options))
    with pytest.raises(ValueError, match="different run"):
        mc.run(scenarios.cluster_trial, **{**options, "seed": 99}, checkpoint=folder)


@pytest.mark.parametrize("fast_path", [True, False])
def test_failed_fits_are_recorded_and_the_run_goes_on(fast_path):
    out = mc.run(scenarios.cluster_trial, **{**GENERAL, "fast": fast_path, "analyses": [FLAKY, "ols"], "reps": 8})
    flaky, ols = out.query("analysis == 'flaky'"), out.query("analysis == 'ols'")
    assert len(flaky) == len(ols) == 8 * 2
    first_y = {r: mc.dataset(scenarios.cluster_trial, seed=5, rep=r, params=SMALL).data["y"].iloc[0] for r in range(8)}
    bad = flaky["rep"].map(first_y) > 0
    assert 0 < bad.sum() < len(flaky)
    assert (flaky.loc[bad, "status"] == "failed").all()
    assert flaky.loc[bad, "message"].eq("failed: RuntimeError: boom").all()
    assert flaky.loc[bad, "estimate"].isna().all()
    assert (flaky.loc[~bad, "status"] == "ok").all()
    np.testing.assert_allclose(flaky.loc[~bad, "estimate"], ols.loc[~bad.to_numpy(), "estimate"])


def _broken_sometimes(seed, n_clusters=6):
    if seed.spawn_key[-1] == 1:
        raise RuntimeError("no data")
    sim = simulate(scenarios.cluster_trial(n_clusters=n_clusters, cluster_size=4), seed)
    return sim.data if n_clusters > 6 else sim


def test_user_functions_as_studies():
    out = mc.run(_broken_sometimes, model=scenarios.cluster_trial.model, grid={"n_clusters": [6, 8]}, reps=3, seed=1,
                 analyses="ols", progress=False)
    failed = out.query("rep == 1")
    assert failed["status"].eq("failed").all() and failed["message"].str.contains("simulation: RuntimeError").all()
    assert out.query("rep != 1")["status"].eq("ok").all()
    assert out.query("n_clusters == 6 and rep != 1")["truth"].notna().all()  # a Simulation has a truth
    assert out.query("n_clusters == 8")["truth"].isna().all()  # a DataFrame has none


def test_invalid_arguments_fail_before_running():
    run = scenarios.cluster_trial
    cases = [
        (dict(reps=0), "reps"),
        (dict(seed=-1), "seed"),
        (dict(grid={"n_schools": [2]}), "n_schools"),
        (dict(grid={"n_clusters": [4]}, params={"n_clusters": 5}), "in one place"),
        (dict(grid={"n_clusters": []}), "non-empty"),
        (dict(coefs=["dose"]), "coefs"),
        (dict(analyses="anova"), "analyses"),
        (dict(executor=object()), "executor"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            mc.run(run, **{**dict(reps=2, seed=1, progress=False), **kwargs})
    with pytest.raises(ValueError, match="model: required"):
        mc.run(scenarios.cluster_trial(), reps=2, seed=1)
    with pytest.raises(ValueError, match="fast path cannot run this study: the design has dropout"):
        mc.run(scenarios.blood_pressure, params={"dropout": 0.2}, reps=2, seed=1, fast=True)
    with pytest.raises(ValueError, match="fast path cannot run this study: analysis 'lmm_wald'"):
        mc.run(scenarios.plant_growth, reps=2, seed=1, analyses="lmm_wald", fast=True)
    with pytest.raises(ValueError, match="random-intercept"):
        mc.run(scenarios.plant_growth, reps=2, seed=1, analyses="lrt_vc")
    assert mc.fast_path_reason(scenarios.schools(), scenarios.schools.model, an.get("ols")) is None
    sloped = ModelSpec("score ~ method + ses", "school", vc_formula={"classroom": "0 + C(classroom):ses"})
    assert "not a random intercept" in mc.fast_path_reason(scenarios.schools(), sloped, an.get("ols"))
    design = Design(**{**scenarios.cluster_trial(**SMALL).__dict__})
    assert mc.fast_path_reason(design, ModelSpec("y ~ x", "cluster"), an.get("ols,lmm_t")) is None


def test_progress_bar_can_be_turned_off(capsys):
    mc.run(scenarios.cluster_trial, params=SMALL, reps=4, seed=1, analyses="ols", progress=True)
    assert "montecarlo" in capsys.readouterr().err
    mc.run(scenarios.cluster_trial, params=SMALL, reps=4, seed=1, analyses="ols", progress=False)
    assert capsys.readouterr().err == ""


def test_cli_runs_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "results.csv"
    argv = ["montecarlo", "cluster_trial", "--reps", "30", "--seed", "2", "--set", "cluster_size=5",
            "--grid", "n_clusters=6,8", "--analyses", "ols,lmm_t", "--coefs", "treatment", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rejection" in printed and "lmm_t" in printed and f"wrote 120 rows to {out}" in printed
    table = pd.read_csv(out)
    assert len(table) == 2 * 30 * 2 * 1 and list(table.columns[:2]) == ["n_clusters", "cell"]
    expected = mc.run(scenarios.cluster_trial, params={"cluster_size": 5}, grid={"n_clusters": [6, 8]}, reps=30, seed=2,
                      analyses="ols,lmm_t", coefs=["treatment"], progress=False)
    np.testing.assert_allclose(table["estimate"], expected["estimate"], rtol=1e-15)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--analyses", "ols,anova"], "anova"),
        (["--analyses", "ols", "--grid", "n_clusters=6,x"], "--grid: n_clusters='x' is not a whole number"),
        (["--analyses", "ols", "--grid", "n_clusters"], "--grid: got"),
        (["--analyses", "ols", "--set", "rho=1"], "rho"),
        (["--analyses", "ols", "--coefs", "dose"], "coefs"),
        (["--analyses", "ols", "--workers", "0"], "--workers"),
        (["--analyses", "lrt_vc", "--out-folder-missing"], "unrecognized"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, extra, match):
    out = tmp_path / "results.csv"
    argv = ["montecarlo", "cluster_trial", "--reps", "3", "--seed", "1", "--out", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lmmsim: error:") and match in err
    assert not out.exists()


def test_cli_checks_the_output_folder_and_scenario(tmp_path, capsys):
    base = ["--reps", "3", "--seed", "1", "--analyses", "ols"]
    assert main(["montecarlo", "cluster_trial", *base, "--out", str(tmp_path / "no" / "r.csv")]) == 2
    assert main(["montecarlo", "galaxy", *base, "--out", str(tmp_path / "r.csv")]) == 2
    assert main(["montecarlo", "cluster_trial", "--seed", "1", "--analyses", "ols", "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "folder" in err[0] and "galaxy" in err[1] and "--reps" in err[2]
    assert list(tmp_path.iterdir()) == []


def test_cli_keeps_the_rows_an_analysis_cannot_estimate(tmp_path, capsys):
    out = tmp_path / "results.csv"
    argv = ["montecarlo", "cluster_trial", "--reps", "4", "--seed", "1", "--set", "n_clusters=6", "--set",
            "cluster_size=4", "--analyses", "cluster_means,ols", "--coefs", "x", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cluster_means" in printed and f"wrote 8 rows to {out}" in printed
    table = pd.read_csv(out, keep_default_na=False)
    failed = table.query("analysis == 'cluster_means'")
    assert len(failed) == 4 and (failed["status"] == "failed").all()
    assert failed["message"].str.contains("gives no estimate of x").all()


# Block-diagonal models (random slopes, nested intercepts) on the fast path.
BLOCK = {
    "blood_pressure": {"n_patients": 12, "n_weeks": 5},
    "plant_growth": {"n_plots": 10, "n_weeks": 5},
    "schools": {"n_schools": 8, "n_classrooms": 3, "n_students": 5},
}
BLOCK_ANALYSES = "ols,ols_cluster,lmm_t,lmm_satterthwaite,sd_reml,sd_ml"


@pytest.mark.parametrize("name", BLOCK)
def test_block_designs_take_the_fast_path(name):
    scenario = getattr(scenarios, name)
    analyses = an.get(BLOCK_ANALYSES)
    assert mc.fast_path_reason(scenario(), scenario.model, analyses) is None
    assert "random-intercept models only" in mc.fast_path_reason(scenario(), scenario.model, an.get("lmm_wald"))


@pytest.mark.parametrize("name", BLOCK)
def test_block_fast_path_draws_what_simulate_draws(name):
    scenario = getattr(scenarios, name)
    design = scenario(**BLOCK[name])
    seeds = [mc.replication_seed(3, 0, r) for r in range(3)]
    batch = mc.simulate_batch(design, scenario.model, seeds)
    assert batch.layout is not None
    for r, seed in enumerate(seeds):
        y, X, groups = an.design_matrices(simulate(design, seed).data, scenario.model)
        np.testing.assert_array_equal(batch.y[r], y)
        np.testing.assert_array_equal(batch.X if batch.X.ndim == 2 else batch.X[r], X.to_numpy())
        np.testing.assert_array_equal(batch.groups, groups)


def _loglik_gap(scenario, params, seed, rep, reml):
    """Exact minus statsmodels log-likelihood on one replication (>= 0 up to rounding if
    the exact fit finds the maximum)."""
    data = mc.dataset(scenario, seed=seed, rep=rep, params=params).data
    y, X, groups = an.design_matrices(data, scenario.model)
    block = model_layout(data, scenario.model)
    exact = fit_block(y, X.to_numpy(), block.Z, groups, block.terms, reml=reml)
    return float(exact.llf[0]) - an.lmm.lmm(data, scenario.model, reml=reml).result.llf


@pytest.mark.parametrize("name", BLOCK)
def test_block_fast_and_general_paths_agree(name):
    """Same datasets: the exact block fits reach at least statsmodels' log-likelihood, and give
    statsmodels' answers where statsmodels' fit is at that maximum (statsmodels sometimes
    stops short, even when its checks pass)."""
    scenario, reps = getattr(scenarios, name), 8
    options = dict(params=BLOCK[name], reps=reps, seed=11, analyses=BLOCK_ANALYSES, progress=False)
    fast = mc.run(scenario, **options)
    general = mc.run(scenario, **options, fast=False)
    both = general.merge(fast, on=["rep", "analysis", "parameter"], suffixes=("", "_fast"))
    assert len(both) == len(general) == len(fast)
    gaps = {reml: np.array([_loglik_gap(scenario, BLOCK[name], 11, r, reml) for r in range(reps)])
            for reml in (True, False)}
    assert (gaps[True] > -1e-6).all() and (gaps[False] > -1e-6).all()
    same = np.where(both["analysis"] == "sd_ml", np.abs(gaps[False])[both["rep"]] < 1e-7,
                    np.abs(gaps[True])[both["rep"]] < 1e-7) | both["analysis"].str.startswith("ols")
    ok = both[same & (both["status"] == "ok") & (both["status_fast"] == "ok")]
    assert len(ok) >= len(both) // 4
    np.testing.assert_allclose(ok["estimate"], ok["estimate_fast"], rtol=1e-3, atol=1e-3)
    tested = ok.dropna(subset=["p_value"])
    np.testing.assert_allclose(tested["se"], tested["se_fast"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(tested["df"], tested["df_fast"], rtol=1e-3)
    np.testing.assert_allclose(tested["p_value"], tested["p_value_fast"], rtol=1e-2, atol=1e-4)


def test_importing_the_cli_imports_neither_statsmodels_nor_scipy():
    """Start-up stays quick: the heavy libraries load when something is fitted."""
    import subprocess
    import sys

    code = "import sys, lmmsim.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('statsmodels', 'scipy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
