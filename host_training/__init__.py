"""The GPU/CPU host: from DX7 voices to a trained model and the user's host commands.

Sub-packages, bottom to top (a lower one never imports a higher one):

- ``host_training.audio``: voices to sound and sound to numbers (Dexed's engine, log-mel
  features, the audio measures, pitch, synthetic voices and foreign sounds).
- ``host_training.dataset``: the training data set (build, store, descriptors, tags, splits)
  and the rendered tag scores of any voice.
- ``host_training.model``: the networks and their objectives (normalizing flows, the VAE,
  baselines, losses, the knob losses and priors, checkpoints).
- ``host_training.jobs``: what a user runs (train, evaluate, match, generate, export for
  conversion, the register, run folders, plots).

``configs/`` holds the shipped training configs, ``default_model/`` the shipped model,
``data/`` small reference figures. May import ``dx7``; the device side never imports this.
"""
