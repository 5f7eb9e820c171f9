"""Statistics: finished jobs counted per minute, task and queue (with queue-wait and run-time
histograms), rolled up for the charts, the alerts and /metrics; and the charts drawn from them."""
