"""LAMP training in simulation (torch; the workstation side): `lamp-train pretrain|finetune|eval`.

    config.py      TrainConfig, presets (debug, cpu, paper), YAML round trip, overrides
    run.py         the run directory layout, run.json
    runs.py        create / resume / load runs: pretraining, finetuning (init, instruction tuning, linear probe)
    loop.py        the training loop shared by both
    replay.py      episodes on disk, bounded memory, n-step windows
    checkpoint.py  safetensors + JSON checkpoints, atomic, resumable
    text.py        the run's instruction encoder (R3M's DistilBERT, or a random one saved with the run)
    vlm.py         r_VLM labels of stored episodes (models.relabel), per-instruction standardization
    evaluate.py    success rate and return of the deterministic policy
    runlog.py      TensorBoard, evaluation history, learning curve, videos
    cli.py         lamp-train

The agent itself is training/agent; docs/training.md explains the choices and the measurements.
"""
