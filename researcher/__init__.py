"""The researcher: everything only the researcher container runs.

  run.py            the command: wait for every node, the experiment round by round, results
  experiment.py     the tutorial's Stage B as a Fed-BioMed Experiment, and its metrics
  strategy.py       k-of-n rounds through Fed-BioMed's node-selection extension point
  checkpoint.py     a run's progress beside Fed-BioMed's breakpoints, for --resume
  privacy.py        what local differential privacy cost each centre (epsilon)
  heterogeneity.py  how the centres differ, from the aggregates their nodes published
  results.py        what the researcher writes in results/<run-id>/ (metrics, model, curve,
                    summary, fingerprints, run.json), atomically
  collect.py        the `results` service: copies finished runs to the host's ./results/
"""
