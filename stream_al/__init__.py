"""stream_al: streaming active learning on Kafka.

An incrementally trained river model scores each sample; a query strategy sends the
uncertain ones to human labelers within a labeling budget; labels come back late and
the model learns from them online.
"""

__version__ = "0.1.0"
