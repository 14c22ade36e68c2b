"""The model lifecycle for engineers and auditors: start a model, reproduce a version, trace a score, show an environment.

Workflows over the use-cases (training, scoring, deploy) and the registry, one command each:
``new-model`` (:mod:`.scaffold`), ``models reproduce`` (:mod:`.reproduce`), ``trace`` and ``status`` (:mod:`.trace`).
"""
