"""The networks and their objectives: invertible flows (``flows``), shared blocks (``blocks``),
the VAE with its regression flow (``vae``), the baselines and retrieval (``baselines``), the
training losses (``losses``, ``slots``), the knob losses and the DX7 manual's knob prior
(``knob_loss``, ``knob_prior``), and model files (``checkpoint``).

May import ``dx7``, ``host_training.audio`` and ``host_training.dataset``.
"""
