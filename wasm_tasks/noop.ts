// noop: does nothing and outputs `null`. Used by the benchmark to measure scheduling cost.
process.stdout.write("null");
