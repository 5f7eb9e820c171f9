"""/metrics for Prometheus: the engine's figures (jobs by state, queues, workers, beat, statistics as
histograms), read fresh at each scrape (collector.py), served to the addresses and tokens allowed (views.py)."""
