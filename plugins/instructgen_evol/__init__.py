"""Evol-Instruct (Xu et al. 2023, WizardLM) as an instructgen generation method: rounds of
in-depth and in-breadth evolution of seed instructions, the paper's elimination step, answers
for the evolved instructions."""
