// fail: writes a message to stderr and exits with the code given as its first argument
// (default 3). Tests use it for the failure path of a run.
const code = process.argv.length > 1 ? I32.parseInt(process.argv[1]) : 3;
process.stderr.write("fail: giving up on purpose with exit code " + code.toString() + "\n");
process.exit(code);
