"""What a user runs on the host, one module a verb: ``train``, ``evaluate``, ``match``,
``generate``, ``export`` (what a run hands to conversion), ``register`` (the octave read by
listening), ``runs`` (run folders and the shipped default model), ``plots``, and
``training_data`` (a data set as training reads it).

May import everything else of ``host_training`` and ``dx7``; ``dxmacro.commands`` calls it.
"""
