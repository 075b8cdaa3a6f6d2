"""Development tools of retail-segments, outside the runtime package: the synthetic raw-file
generator, the independent pandas reference of the study, the notebook-style pandas baseline and
the benchmark. The build never imports them; tests and `make bench` do."""
