"""The training plans fedjourney ships, one Fed-BioMed TorchTrainingPlan per file: mlp (the
tutorial's, the default), logistic (the linear baseline) and gru (a recurrent model over the
time bins). Copy one to start your own: docs/own-model.md. They are the fedjourney.plans
package (src/fedjourney/plans is a link to this folder), so the images carry them.
"""
