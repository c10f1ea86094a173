"""The budgets of `frcunet compare`: which models, which recipe and what minutes each seed gets.

Keras-free, so the command line lists the budgets without loading a backend.
"""

# Widths chosen so the CPU baselines have about frcunet-lite's 2.9 M parameters. frcunet-lite keeps its
# default width here (the cpu recipe narrows it) so that the three networks stay of a size.
CPU_MODELS = {"frcunet-lite": {"width": 0.25}, "unet": {"base_filters": 20}, "attention-unet": {"base_filters": 20}}
BUDGETS = {
    "cpu": {
        "models": CPU_MODELS,
        "recipe": "cpu",
        "train": dict(max_minutes=15.0),
        "finetune": dict(max_minutes=3.0, lr=2e-4, warmup_epochs=0.0, batch_size=8),
    },
    "paper": {
        "models": {"frcunet": {}, "unet": {}, "attention-unet": {}},
        "recipe": "paper",
        "train": {},
        "finetune": {},
    },
}
