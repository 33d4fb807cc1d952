"""The Fed-BioMed node of one hospital centre: everything only the node container runs.

Start-up (`python -m fedjourney.node`, see start.py), step by step:
  data.py        check the centre's data, build its features once, record its fingerprint
  profile.py     the centre in aggregates only, published with its dataset record
  component.py   the node component, dataset registration, plan approval, the running node
  pinning.py     a hospital kit's pinned researcher certificate
  start.py       the steps in order, each bounded, then the node until the run ends
What the node judges on each request, before Fed-BioMed reads any data:
  rules.py       the centre's data-use policy (fedjourney/policy.py) and what it reports
  ledger.py      the privacy ledger: epsilon DP-SGD spent on the centre's data, all runs
What the federation's training plan calls on the node:
  dataset.py     the centre as Fed-BioMed loads it (features from cache.py)
  metrics.py     validation of the global model on the held-out patients, and the centre's
                 posture for it under secure aggregation
"""
