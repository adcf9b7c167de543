"""Genomic prediction: SNP readers, per-fold preprocessing, GBLUP and linear baselines,
1D CNN / MLP on SNPs, cross-validation on identical folds, msprime simulation.

>>> from cnnkit.genomics import read_genotypes, read_phenotypes, align, cross_validate, CVConfig
>>> g, y, _ = align(read_genotypes("geno.bed"), read_phenotypes("pheno.csv", "yield"))
>>> result = cross_validate(g.matrix, y, CVConfig(methods=("cnn", "gblup")))  # doctest: +SKIP
"""

from cnnkit.genomics.baselines import GBLUP, ElasticNet, Lasso, Ridge
from cnnkit.genomics.cv import CVConfig, cross_validate, fold_indices, scores
from cnnkit.genomics.io import Genotypes, Phenotypes, align, read_genotypes, read_phenotypes
from cnnkit.genomics.methods import NeuralRegressor, make_method
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.run import load_run, predict_run, train_run
from cnnkit.genomics.simulate import SimConfig, simulate, write_simulation
from cnnkit.genomics.trainer import SnpTrainConfig, fit_network
from cnnkit.models.zoo.snp import SnpCNN1d, SnpMLP

__all__ = [
    "CVConfig",
    "ElasticNet",
    "GBLUP",
    "Genotypes",
    "Lasso",
    "NeuralRegressor",
    "Phenotypes",
    "Ridge",
    "SimConfig",
    "SnpCNN1d",
    "SnpMLP",
    "SnpPreprocessor",
    "SnpTrainConfig",
    "align",
    "cross_validate",
    "fit_network",
    "fold_indices",
    "load_run",
    "make_method",
    "predict_run",
    "read_genotypes",
    "read_phenotypes",
    "scores",
    "simulate",
    "train_run",
    "write_simulation",
]
