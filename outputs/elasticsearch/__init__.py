"""ElasticSearchOutput, its bulk protocol, encoders, dead-letter file and index templates."""
