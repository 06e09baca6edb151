"""The stages of one run, each a function with one job and a small typed result (`train.run`):

    plan(cfg) → Plan            every refusal; nothing written
    fit_and_test(plan) → Fitted the Trainer: fit, then test the model the run is judged by
    measure(task, ...) → dict   size, latency, memory, and the compression callbacks' own figures
    deploy(task, ...) → Deployment  write each export format, measure each file as shipped
    report(plan, ...) → dict    MLflow metrics and artifacts, and the one-screen summary
"""
