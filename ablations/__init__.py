"""The harness around the model: a study (tables, presets, runs) trained and stored on disk.

Layers, top to bottom; a module imports only from its own layer or the ones below it (checked by
import-linter, `lint-imports`, contract in pyproject.toml):

    ablations/cli/     the command line (main.py, parser.py, output.py) and cluster launchers (launch/)
    analysis/          reads run folders and table definitions; writes tables, plots, the report
    ablations/study/   what to run: presets, tables, config, validation, identity, run folders, status
    ablations/train/   how to train one run: phases, loop, engine, optimizer, checkpoint, interrupt,
                       distributed, batching, memory plan
    ablations/data/    datasets and loaders (built-in, CIFAR, ImageFolder, video folders)
    models/            the model, MAE, targets, rows.yaml, measurement (params, MACs, throughput)
    ablations/store/   run-store primitives: atomic writes, locks, run logs, predictions, hashing
    ablations/errors   the error kinds every layer raises
"""
