"""Stage B: what runs inside the Fed-BioMed node and researcher containers.

Modules that import fedbiomed (dataset, plan) only load in the images; the rest is plain
Python, tested on the host.
"""
