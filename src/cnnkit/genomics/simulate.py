"""Simulated genotypes with realistic linkage (msprime) and traits of known heritability.

Genotypes come from a coalescent with recombination (one chromosome, diploid individuals,
constant effective size ``ne``); SNPs with minor allele frequency >= 0.05 are thinned
evenly to the requested number, so neighbouring SNPs are in linkage disequilibrium.

Traits (genetic value scaled so that its variance is ``h2`` of the phenotype's in the sample):

- ``additive``: ``n_qtl`` QTL with normal effects, drawn by ``tstrait``;
- ``local-epistasis``: ``n_qtl // 2`` pairs of SNPs 1-5 positions apart, each contributing
  ``a * z_i * z_j`` (``z`` = centred dosage): additive-by-additive interactions;
- ``mixed``: half of the genetic variance additive, half local epistasis;
- ``null``: the negative control. The "genetic value" is built like an epistatic one, from
  pairs of distant SNPs (>= 200 apart), but on a shuffled copy of the individuals, so the
  trait is independent of the genotypes and every method must predict at r ~ 0. (Distant
  pairs on the real genotypes are not a null: in a coalescent sample relatives share pairs
  of alleles, and GBLUP predicted such a trait at r ~ 0.17.) ``h2`` is the share of this
  decoy value in the trait; nothing of it is predictable.

Written next to the data: ``truth.json`` with h2, the trait, the QTL/pairs and the
simulation's ``ne`` and genome length (for the Daetwyler expectation in cross-validation).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import Arg, user_error

TRAITS = ("additive", "local-epistasis", "mixed", "null")


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Settings of :func:`simulate` (CLI ``genomics simulate`` flags)."""

    n: int = 2000
    snps: int = 2000
    h2: float = 0.5
    trait: str = "additive"
    seed: int = 0
    ne: int = 1000
    genome_morgans: float = 1.0
    n_qtl: int = 100

    def __post_init__(self) -> None:
        for name in ("n", "snps", "ne", "n_qtl"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"{name} must be an int >= 2. Received: {name}={v!r}")
        if not 0.0 < self.h2 < 1.0:
            raise ValueError(f"h2 must be in (0, 1). Received: h2={self.h2}")
        if self.trait not in TRAITS:
            raise ValueError(f"trait must be one of {', '.join(TRAITS)}. Received: {self.trait!r}")
        if not self.genome_morgans > 0:
            raise ValueError(f"genome_morgans must be > 0. Received: {self.genome_morgans}")
        names = {"n_qtl": Arg("n_qtl", "--n-qtl"), "snps": Arg("snps", "--snps")}
        if self.n_qtl > self.snps:
            raise user_error(
                ValueError,
                "{n_qtl} must be <= {snps}: every QTL is one of the simulated SNPs. "
                f"Received: {{n_qtl}}={self.n_qtl}, {{snps}}={self.snps}",
                **names,
            )
        if self.trait in ("local-epistasis", "mixed") and self.snps < 6:
            raise user_error(
                ValueError,
                "{snps} must be >= 6 for interacting pairs 1-5 SNPs apart. "
                f"Received: {{snps}}={self.snps}",
                **names,
            )


@dataclass
class Simulation:
    """A simulated data set: dosages ``(N, L)``, phenotypes ``(N,)``, positions, truth."""

    genotypes: np.ndarray
    phenotype: np.ndarray
    positions: np.ndarray
    truth: dict


def _coalescent(cfg: SimConfig):
    """Tree sequence with sites; the mutation rate aims at ~6x the SNPs wanted."""
    import msprime

    rho = 1e-8
    length = cfg.genome_morgans / rho
    ts = msprime.sim_ancestry(
        samples=cfg.n,
        population_size=cfg.ne,
        sequence_length=length,
        recombination_rate=rho,
        random_seed=cfg.seed + 1,
    )
    harmonic = float(np.sum(1.0 / np.arange(1, 2 * cfg.n)))
    mu = 6 * cfg.snps / (4 * cfg.ne * length * harmonic)
    return msprime.sim_mutations(
        ts,
        rate=mu,
        random_seed=cfg.seed + 2,
        model=msprime.BinaryMutationModel(),
        discrete_genome=False,
    )


def _pick_snps(ts, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(site_ids, dosages (N, L))`` of evenly thinned common SNPs."""
    haps = ts.genotype_matrix()  # (sites, 2N) 0/1
    dosage = haps[:, 0::2] + haps[:, 1::2]  # diploid individual i = nodes 2i, 2i+1
    freq = dosage.mean(axis=1) / 2
    common = np.flatnonzero(np.minimum(freq, 1 - freq) >= 0.05)
    if len(common) < cfg.snps:
        raise ValueError(
            f"the simulation produced {len(common)} common SNPs, fewer than snps={cfg.snps}; "
            "raise genome_morgans or ne"
        )
    chosen = common[np.linspace(0, len(common) - 1, cfg.snps).round().astype(int)]
    return chosen, dosage[chosen].T.astype(np.float32)


def _additive(ts, site_ids, n_qtl: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    import tstrait

    sub = ts.delete_sites(np.setdiff1d(np.arange(ts.num_sites), site_ids))
    model = tstrait.trait_model(distribution="normal", mean=0, var=1)
    trait = tstrait.sim_trait(sub, model, num_causal=n_qtl, random_seed=seed)
    gv = tstrait.genetic_value(sub, trait)["genetic_value"].to_numpy()
    qtl = [
        {"snp_index": int(s), "effect": float(e)}
        for s, e in zip(trait["site_id"], trait["effect_size"], strict=True)
    ]
    return gv, qtl


def _pairs(x: np.ndarray, n_pairs: int, rng, distant: bool) -> tuple[np.ndarray, list[dict]]:
    """Sum of ``a * z_i * z_j`` over pairs 1-5 apart (or >= 200 apart when ``distant``)."""
    n_loci = x.shape[1]
    z = x - x.mean(axis=0)
    g, pairs = np.zeros(x.shape[0]), []
    for _ in range(n_pairs):
        if distant:
            i, j = sorted(rng.choice(n_loci, 2, replace=False))
            while j - i < min(200, n_loci // 3):
                i, j = sorted(rng.choice(n_loci, 2, replace=False))
        else:
            i = int(rng.integers(0, n_loci - 5))
            j = i + int(rng.integers(1, 6))
        a = float(rng.normal())
        g += a * z[:, i] * z[:, j]
        pairs.append({"snp_index": [int(i), int(j)], "effect": a})
    return g, pairs


def _unit(g: np.ndarray) -> np.ndarray:
    sd = np.std(g)
    return (g - g.mean()) / sd if sd > 0 else g * 0.0


def _genetic_value(cfg, ts, site_ids, x, rng) -> tuple[np.ndarray, dict]:
    if cfg.trait == "additive":
        g, qtl = _additive(ts, site_ids, cfg.n_qtl, cfg.seed + 3)
        return _unit(g), {"qtl": qtl, "pairs": [], "h2_additive": cfg.h2}
    if cfg.trait == "null":
        # Distant pairs on the real genotypes are *not* a null: relatives share pairs of
        # alleles, so GBLUP predicts such a trait (r ~ 0.17 at 2,000 x 2,000, Ne 1,000).
        # Computing them on a shuffled copy of the individuals cuts every link to x.
        g, pairs = _pairs(x[rng.permutation(len(x))], cfg.n_qtl // 2, rng, distant=True)
        return _unit(g), {"qtl": [], "pairs": [], "decoy_pairs": pairs, "h2_additive": 0.0}
    g_epi, pairs = _pairs(x, max(1, cfg.n_qtl // 2), rng, distant=False)
    if cfg.trait == "local-epistasis":
        return _unit(g_epi), {"qtl": [], "pairs": pairs, "h2_additive": None}
    g_add, qtl = _additive(ts, site_ids, cfg.n_qtl // 2, cfg.seed + 3)
    g = np.sqrt(0.5) * _unit(g_add) + np.sqrt(0.5) * _unit(g_epi)
    return _unit(g), {"qtl": qtl, "pairs": pairs, "h2_additive": cfg.h2 / 2}


def simulate(config: SimConfig) -> Simulation:
    """Simulate genotypes and one trait.

    Args:
        config: sizes, heritability, trait architecture, seed, ``ne``, genome length.

    Returns:
        The :class:`Simulation`; ``truth`` holds ``h2``, ``trait``, ``qtl`` (SNP index,
        effect), ``pairs`` (two SNP indices, effect), ``ne``, ``genome_morgans``.

    Shape:
        ``genotypes (N, L)``, ``phenotype (N,)``, ``positions (L,)``.
    """
    ts = _coalescent(config)
    site_ids, x = _pick_snps(ts, config)
    rng = np.random.default_rng(config.seed + 4)
    g, parts = _genetic_value(config, ts, site_ids, x, rng)
    e = _unit(rng.normal(size=len(g)))
    y = np.sqrt(config.h2) * g + np.sqrt(1 - config.h2) * e
    positions = ts.tables.sites.position[site_ids]
    truth = {**asdict(config), **parts}
    return Simulation(x, y, positions, truth)


def write_simulation(sim: Simulation, out: str | Path) -> dict[str, str]:
    """Write ``geno.bed/.bim/.fam``, ``pheno.csv`` and ``truth.json`` into ``out``.

    Returns:
        The paths written, by role (``genotypes``, ``phenotypes``, ``truth``).
    """
    from bed_reader import to_bed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, n_loci = sim.genotypes.shape
    ids = [f"ind{i + 1:05d}" for i in range(n)]
    snps = [f"snp{j + 1:05d}" for j in range(n_loci)]
    props = {
        "fid": ids,
        "iid": ids,
        "sid": snps,
        "chromosome": ["1"] * n_loci,
        "bp_position": sim.positions.round().astype(int).tolist(),
        "cm_position": (sim.positions / 1e6).tolist(),
    }
    to_bed(out / "geno.bed", sim.genotypes, properties=props, num_threads=1)
    with open(out / "pheno.csv", "w", encoding="utf-8") as fh:
        fh.write("id,trait\n")
        fh.writelines(f"{i},{v:.6f}\n" for i, v in zip(ids, sim.phenotype, strict=True))
    truth = dict(sim.truth)
    for q in truth["qtl"]:
        q["snp_id"] = snps[q["snp_index"]]
    for p in truth["pairs"]:
        p["snp_id"] = [snps[k] for k in p["snp_index"]]
    (out / "truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    return {
        "genotypes": str(out / "geno.bed"),
        "phenotypes": str(out / "pheno.csv"),
        "truth": str(out / "truth.json"),
    }


def find_truth(geno_path: str | Path) -> dict | None:
    """The ``truth.json`` next to a simulated genotype file, or None."""
    p = Path(geno_path)
    folder = p.parent if p.suffix or p.exists() else p.parent
    f = folder / "truth.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None
