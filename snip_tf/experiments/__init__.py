"""The SNIP paper's experiments, one module each (``python -m snip_tf.experiments.NAME``).

figure1 (error vs sparsity), table1 (LeNets vs baselines), table2 (the zoo), figure2 (mask images),
figure3 (pruning batch size), table3 (initializers), figure4 (fitting random labels). Each writes
CSV/JSON and a PNG plot under ``results/<name>/`` and records seeds, budget, hardware and wall time.
"""
