"""Studies: plans, study.json records, the driver process, executors (here, or Ray), duration estimates, reports.
The engine only runs in the processes they start."""
