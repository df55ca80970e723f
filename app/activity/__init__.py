"""What the service did, counted per minute for the console's charts (`activity_minutes`).

Prometheus' counters are per process and gone at a restart; the console needs figures that any
process can show, over the last day. So each process counts in memory where things happen (a sync
finalized, a call to Apple, a webhook attempt: `Tally`), and every few seconds adds its counts to
one row per publisher, minute, metric and label (`flush`), one statement for all of them: nothing
on the hot paths waits for the database or contends for a row. A process that dies loses at most
its last few seconds of counts, which the charts can afford. The queue's depth and age are sampled
from `jobs` once a minute. The rows of publisher 0 are the totals over every publisher.
"""
