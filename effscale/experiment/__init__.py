"""The resumable work-queue engine that search, compare and train run on: settings, budgets,
data split, run directory, storage, queue, heartbeat, workers, trial runner, halving and the
statistics of the results."""
