"""The researcher: everything only the researcher container runs.

  run.py         the command: wait for every node, FedAverage round by round, results
  experiment.py  the tutorial's Stage B as a Fed-BioMed Experiment, and its metrics
  results.py     what the researcher writes in results/<run-id>/ (metrics, model, curve,
                 summary, fingerprints, run.json), atomically
  collect.py     the `results` service: copies finished runs to the host's ./results/
"""
